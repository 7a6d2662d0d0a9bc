// An MQTT.js (Debian's node-mqtt) client over WebSockets for the
// end-to-end tests: it connects to URL (ws:// or wss://, trusting the CA
// file if one is given), subscribes to SUB_TOPIC at QoS 2, publishes N
// messages of SIZE bytes to PUB_TOPIC (message i at QoS i % 3, every
// byte i % 256), and ends once it has received N messages.  Every event
// is a JSON line on stdout; a message is given by its length and SHA-1.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const mqtt = require("mqtt");

const [url, clientId, subTopic, pubTopic, n, size, ca] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const opts = { clientId: clientId, clean: true, reconnectPeriod: 0, connectTimeout: 5000 };
if (ca)
	opts.ca = fs.readFileSync(ca);		// MQTT.js hands it to ws for wss://
let got = 0, published = 0;
const c = mqtt.connect(url, opts);
c.on("connect", () => {
	out({ ev: "connack" });
	c.subscribe(subTopic, { qos: 2 }, (err, granted) => {
		out({ ev: "suback", err: err ? String(err) : null, granted: granted });
		for (let i = 0; i < Number(n); i++)
			c.publish(pubTopic, Buffer.alloc(Number(size), i % 256), { qos: i % 3 },
			    (e) => {
				out({ ev: "published", i: i, err: e ? String(e) : null });
				if (++published === Number(n))
					out({ ev: "all_published" });
			});
	});
});
c.on("message", (topic, payload, packet) => {
	out({ ev: "message", topic: topic, qos: packet.qos, len: payload.length,
	    sha1: crypto.createHash("sha1").update(payload).digest("hex") });
	if (++got === Number(n))
		c.end(false, {}, () => { out({ ev: "end" }); process.exit(0); });
});
c.on("error", (e) => { out({ ev: "error", error: String(e) }); process.exit(1); });
