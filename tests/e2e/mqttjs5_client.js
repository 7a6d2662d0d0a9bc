// An MQTT.js (Debian's node-mqtt) client at protocol version 5 for the
// end-to-end tests: it answers requests.  It connects with a session
// expiry and a topic alias maximum, prints the CONNACK's properties,
// subscribes to REQ_TOPIC with a Subscription Identifier and No Local,
// and for each request publishes "re:" + payload to the request's
// Response Topic with its Correlation Data, until it has answered N.
// Every event is a JSON line on stdout.
"use strict";
const mqtt = require("mqtt");

const [port, clientId, reqTopic, n] = process.argv.slice(2);
let answered = 0;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const c = mqtt.connect({
	host: "127.0.0.1", port: Number(port), clientId: clientId, protocolVersion: 5,
	clean: true, reconnectPeriod: 0, connectTimeout: 5000,
	topicAliasMaximum: 5,	// MQTT.js keeps the table and puts it in the CONNECT
	properties: { sessionExpiryInterval: 60, receiveMaximum: 10 },
});
c.on("connect", (connack) => {
	out({ ev: "connack", rc: connack.reasonCode, props: connack.properties || {} });
	c.subscribe(reqTopic, { qos: 1, nl: true, properties: { subscriptionIdentifier: 42 } },
	    (err, granted) => {
		out({ ev: "suback", err: err ? String(err) : null, granted: granted });
	});
});
c.on("message", (topic, payload, packet) => {
	const p = packet.properties || {};
	out({ ev: "message", topic: topic, payload: payload.toString(), qos: packet.qos,
	    props: { responseTopic: p.responseTopic, contentType: p.contentType,
		subscriptionIdentifier: p.subscriptionIdentifier, userProperties: p.userProperties,
		correlationData: p.correlationData ? p.correlationData.toString("hex") : null } });
	if (!p.responseTopic)
		return;
	c.publish(p.responseTopic, "re:" + payload.toString(), { qos: 1,
	    properties: { correlationData: p.correlationData, contentType: "text/plain" } },
	    (err) => {
		out({ ev: "answered", err: err ? String(err) : null });
		if (++answered >= Number(n))
			c.end(false, {}, () => { out({ ev: "end" }); process.exit(0); });
	});
});
c.on("error", (e) => { out({ ev: "error", error: String(e) }); process.exit(1); });
c.on("disconnect", (p) => out({ ev: "disconnect", rc: p.reasonCode }));
