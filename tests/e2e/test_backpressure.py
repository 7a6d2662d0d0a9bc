"""Back-pressure on what clients send: a publisher that floods without
reading its answers is throttled (the broker stops reading it) and resumed,
and every message it sent is still stored and answered, in order."""

import json
import socket
import threading

from broker_harness import HOST, wait_for


def test_a_flooding_publisher_that_does_not_read_is_throttled_and_resumed(broker_factory):
    b = broker_factory({"max_client_pending": 8, "client_output_limit": 4096})
    c = b.consumer("flooded")
    c.subscribe("flood")
    n = 2000
    s = socket.create_connection((HOST, b.publisher_port), timeout=30)
    lines = b"".join(b'{"type":"PUB","topic":"flood","msg":"m%d"}\n' % i for i in range(n))
    writer = threading.Thread(target=s.sendall, args=(lines,))
    writer.start()                      # blocks while the broker stops reading
    wait_for(lambda: b.topicd_pid("flood") is not None, 10, "the topic's topicd")
    ids, buf = [], b""
    while len(ids) < n:                 # now read: the broker resumes
        chunk = s.recv(65536)
        assert chunk, "the broker closed the flooding publisher after %d answers" % len(ids)
        buf += chunk
        *done, buf = buf.split(b"\r\n")
        for line in done:
            reply = json.loads(line)
            assert reply["type"] == "PUBREC", line
            ids.append(reply["msgId"])
    writer.join(10)
    assert ids == list(range(1, n + 1))
    for i in ids[:50]:                  # release some: they are delivered in order
        s.sendall(b'{"type":"PUBREL","msgId":%d}\n' % i)
    assert c.wait_messages(50, "flood") == ["m%d" % i for i in range(50)]
    s.close()
