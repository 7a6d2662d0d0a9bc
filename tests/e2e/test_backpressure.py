"""Back-pressure, from outside.

A publisher that floods without reading is no longer read from once
max_client_pending of its publishes wait for the topicd: its own socket
fills and send() returns EAGAIN, and the broker's figures show that it
took exactly that many.  When the topicd answers, the broker reads on,
and every message the publisher sent is stored and answered, in order.

A subscriber that does not read fills its own socket and waits in the
topicd, while another subscriber of the same topic receives every
message as it is published."""

import re
import signal
import threading
import time

from broker_harness import Flood, HarnessError, kill_pid, wait_for
from mqtt_helpers import (PUBACK, PUBLISH, MqttFlood, Receiver, SilentSubscriber, ack_packet,
                          connected_client, pingreq_packet, publish_packet)

PENDING = 8             # max_client_pending
OUTPUT = 4096           # client_output_limit, its smallest value
QUIET = 0.5             # seconds over which an absence of progress is watched


def test_a_flooding_publisher_is_not_read_beyond_max_client_pending(broker_factory):
    b = broker_factory({"max_client_pending": PENDING, "client_output_limit": OUTPUT})
    b.publisher().publish("flood", "before")    # its topicd starts for it
    c = b.consumer("flooded")
    c.subscribe("flood")
    tpid = b.wait_topicd("flood")
    before, _ = b.status()
    flood = Flood(b.publisher_port, "flood")
    # The topicd is stopped: every publish the broker reads now waits.
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        master, topics = b.status()
    finally:
        kill_pid(tpid, signal.SIGCONT)
    assert flood.lines > 2 * PENDING, "blocked after %d lines" % flood.lines
    taken = master["messages_in"] - before["messages_in"]
    assert (taken, topics["flood"]["held"]) == (PENDING, PENDING), \
        "the broker took %d publishes, %d held for the topicd, with %d lines sent and " \
        "max_client_pending %d" % (taken, topics["flood"]["held"], flood.lines, PENDING)

    # The topicd answers: the broker reads on, never with more than
    # max_client_pending publishes of this client waiting.
    held = []
    writer = threading.Thread(target=flood.rest)
    writer.start()
    sampler_done = threading.Event()

    def sample():
        while not sampler_done.is_set():
            held.append(b.status()[1]["flood"]["held"])
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ids = flood.read_pubrecs(flood.lines)
    finally:
        sampler_done.set()
        sampler.join(20)
        writer.join(10)
    assert ids == list(range(1, flood.lines + 1))
    assert held and max(held) <= PENDING, "publishes held for the topicd: %s" % held
    for i in ids[:50]:                  # release some: they are delivered in order
        flood.sock.sendall(b'{"type":"PUBREL","msgId":%d}\n' % i)
    got = c.wait_messages(50, "flood")
    assert [m.split()[0] for m in got] == ["m%d" % i for i in range(50)]


def test_a_publisher_waiting_for_its_answers_is_not_idle(broker_factory):
    """A JSON-lines publisher whose publishes wait for a topicd longer
    than idle_timeout, with more lines sent that the broker does not read
    meanwhile, is not closed as stalled in the middle of a line: when the
    topicd answers, every publish is answered, in order."""
    idle = 1
    b = broker_factory({"max_client_pending": PENDING, "idle_timeout": idle})
    b.publisher().publish("slow", "before")     # its topicd starts for it
    tpid = b.wait_topicd("slow")
    flood = Flood(b.publisher_port, "slow")
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        time.sleep(3 * idle)            # idle_timeout passes, and then some
    finally:
        kill_pid(tpid, signal.SIGCONT)
    writer = threading.Thread(target=flood.rest)
    writer.start()
    try:
        ids = flood.read_pubrecs(flood.lines)
    finally:
        writer.join(10)
    assert ids == list(range(1, flood.lines + 1))
    assert "idle_timeout" not in b.log_text()


class InvalidFlood(Flood):
    """Floods the publisher port with lines that are not JSON."""

    def line(self, i):
        return b"not json %d %s\n" % (i, b"x" * 1024)

    def read_answers(self, n, timeout=30.0):
        buf = b""
        self.sock.settimeout(timeout)
        while buf.count(b"\r\n") < n:
            chunk = self.sock.recv(65536)
            assert chunk, "closed after %d answers" % buf.count(b"\r\n")
            buf += chunk
        return buf.split(b"\r\n")[:-1]


def test_a_flood_of_dead_letters_is_not_read_beyond_max_client_pending(broker_factory):
    """Each line that is not JSON is answered at once and goes to the
    dead-letter topic: while that topic's topicd does not take them, the
    broker stops reading the client after max_client_pending of them
    wait, rather than keep every line in its memory."""
    b = broker_factory({"max_client_pending": PENDING})
    pub = b.publisher()
    pub.send_line("first")                      # the dead-letter topic starts
    pub.expect("INVALID JSON")
    tpid = b.wait_topicd("$DLQ")
    wait_for(lambda: b.status()[1]["$DLQ"]["held"] == 0, 10, "the first dead letter stored")
    flood = InvalidFlood(b.publisher_port, "-")
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        held = b.status()[1]["$DLQ"]["held"]
    finally:
        kill_pid(tpid, signal.SIGCONT)
    assert held <= PENDING, "%d dead letters held for a stopped topicd" % held
    flood.rest()
    assert flood.read_answers(flood.lines) == [b"INVALID JSON"] * flood.lines


def test_qos0_publishes_for_a_topicd_not_running_count_in_max_client_pending(mqtt_factory):
    """QoS 0 publishes held for a topicd that is not running (here, one
    waiting out its restart back-off) count in max_client_pending until
    they go, as requests do until their answers: the publisher is no
    longer read past them (max_held_publishes bounds a topic, not a
    client spreading them over many).  Once the topicd runs, a subscriber
    gets every message, in order."""
    backoff = 4
    b = mqtt_factory({"max_client_pending": PENDING, "restart_backoff_min": backoff,
                      "restart_backoff_max": backoff})
    sub = Receiver(lambda: b.mqtt_port, "held-sub", clean=True)
    sub.connect()
    assert sub.subscribe([("held/t", 0)]) == [0]
    sub.start()
    b.publisher().publish("held/t", "first")    # its topicd starts for it
    sub.wait_until(lambda: len(sub.arrivals) >= 1, 20, "the first message")
    old = b.kill_topicd("held/t")
    wait_for(lambda: b.status()[1]["held/t"]["state"] == "restarting", 10,
             "the master to see the topicd die")
    flood = MqttFlood(b.mqtt_port, "held/t", 1024)
    flood.until_blocked()
    held = b.status()[1]["held/t"]["held"]
    assert held <= PENDING, "%d QoS 0 publishes held for a topicd not running" % held
    b.wait_topicd("held/t", timeout=backoff + 10, not_pid=old)
    flood.rest()
    sub.wait_until(lambda: len(sub.payloads()) >= flood.lines + 1, 60,
                   "all %d messages after the topicd restarted" % flood.lines)
    assert sub.payloads() == [b"first"] + [flood.payload(i) for i in range(flood.lines)]


# ---------------------------------------------------------------- subscribers

SIZE = 16 << 10         # payload bytes: under the size that travels in a memfd
COUNT = 640             # 10 MiB: more than the kernel buffers of a socket and the
                        # delivery socket (client_delivery_buffer) hold
BATCH = 32


def payload(i):
    return "%06d %s" % (i, "y" * (SIZE - 7))


def test_a_subscriber_that_does_not_read_holds_up_no_other(mqtt_factory):
    b = mqtt_factory({"client_output_limit": OUTPUT})
    fast = Receiver(lambda: b.mqtt_port, "bp-fast", clean=True)
    fast.connect()
    assert fast.subscribe([("bp/t", 0)]) == [0]
    fast.start()
    slow = SilentSubscriber(b.mqtt_port, "bp-slow", "bp/t")
    pub = b.publisher()
    sent = [payload(i).encode() for i in range(COUNT)]
    for k in range(0, COUNT, BATCH):
        pub.publish_pipelined([("bp/t", payload(i)) for i in range(k, k + BATCH)])
        # The fast one has this batch before the next is published: it
        # keeps pace with the publisher all through.
        fast.wait_until(lambda: len(fast.arrivals) >= k + BATCH, 10,
                        "messages up to #%d (the slow one has read none)" % (k + BATCH))
    assert fast.payloads() == sent, "the fast subscriber's messages differ"
    # The silent one is stuck in the topicd, far behind, and stays there.
    st = b.topicd_status("bp/t")
    assert (st["subs"], st["online"]) == (2, 2), st
    assert st["lag"] > 0, "nobody is behind: the silent subscriber was not held back"
    time.sleep(QUIET)                   # an absence of progress, watched over a period
    again = b.topicd_status("bp/t")
    assert again["lag"] == st["lag"], "the silent subscriber moved: lag %d, then %d" % (
        st["lag"], again["lag"])
    # Once it reads, it gets every message, in order.
    assert slow.drain(COUNT) == sent, "the slow subscriber's messages differ"
    wait_for(lambda: b.topicd_status("bp/t")["lag"] == 0, 10,
             "the topicd to have nobody behind")


def test_a_subscriber_gone_while_its_output_waits_is_let_go(mqtt_factory):
    """A subscriber that does not read has output waiting in the master,
    which no longer reads from it (its output is over client_output_limit).
    When its connection goes, the master's write fails before any read
    tells it so: the connection must be freed all the same, its output
    dropped (it kept the descriptor and the memory for the life of the
    broker)."""
    b = mqtt_factory({"client_output_limit": OUTPUT})
    pub = b.publisher()
    pub.publish("gone/t", "first")             # its topicd starts
    base = b.status()[0]["clients"]
    slow = SilentSubscriber(b.mqtt_port, "gone-slow", "gone/t")
    for k in range(0, COUNT, BATCH):
        pub.publish_pipelined([("gone/t", payload(i)) for i in range(k, k + BATCH)])
    wait_for(lambda: b.topicd_status("gone/t")["lag"] > 0, 10,
             "the silent subscriber to fall behind")
    assert b.status()[0]["clients"] == base + 1
    slow.close(reset=True)
    wait_for(lambda: b.status()[0]["clients"] == base, 10,
             "the subscriber that went to be let go (%d clients before it came)" % base)


def silent_mqtt(port, tls=None):
    """For disconnect_behind_unread_deliveries: a silent MQTT subscriber
    on port (over TLS with the tls context), and its DISCONNECT."""
    def start(client_id, topic, will):
        slow = SilentSubscriber(port, client_id, topic, tls=tls, will=will)
        return slow.sock, b"\xe0\x00"
    return start


def disconnect_behind_unread_deliveries(b, start_silent, name):
    """A client (start_silent(client_id, topic, will): its socket and the
    bytes of its DISCONNECT) with a will and deliveries it has not read
    sends DISCONNECT and closes: its kernel answers the unread bytes with a
    reset.  The master (stopped meanwhile, so that both wait for it) finds
    its write refused before it has read the DISCONNECT, which the socket
    still holds: it must read it all the same, and not publish the will."""
    watch = Receiver(lambda: b.mqtt_port, name + "-watch", clean=True)
    watch.connect()
    assert watch.subscribe([(name + "/will", 1)]) == [1]
    watch.start()
    pub = b.publisher()
    pub.publish(name + "/t", "first")           # its topicd starts
    sock, disconnect = start_silent(name + "-slow", name + "/t",
                                    (name + "/will", b"gone without a word", 1, False))
    for k in range(0, COUNT, BATCH):
        pub.publish_pipelined([(name + "/t", payload(i)) for i in range(k, k + BATCH)])
    wait_for(lambda: b.topicd_status(name + "/t")["lag"] > 0, 10,
             "the silent subscriber to fall behind")
    kill_pid(b.pid, signal.SIGSTOP)
    try:
        sock.sendall(disconnect)
        sock.close()                             # unread bytes: a reset
    finally:
        kill_pid(b.pid, signal.SIGCONT)
    wait_for(lambda: "id %s-slow: closed" % name in b.log_text(), 10, "the master to close it")
    # The will would have been published as the connection closed: a
    # message published after that comes first if there was none.
    pub.publish(name + "/will", "after the close")
    watch.wait_payload(b"after the close")
    assert watch.payloads(name + "/will") == [b"after the close"], b.log_tail()
    assert "id %s-slow: closed: DISCONNECT" % name in b.log_text(), b.log_tail()


def test_a_disconnect_behind_unread_deliveries_cancels_the_will(mqtt_factory):
    """The DISCONNECT the socket still holds when a write fails is read
    (disconnect_behind_unread_deliveries); over TLS in test_tls."""
    b = mqtt_factory({"client_output_limit": OUTPUT, "log_type": "information"})
    disconnect_behind_unread_deliveries(b, silent_mqtt(b.mqtt_port), "rst")


def test_a_closed_connection_that_does_not_read_is_let_go_after_idle_timeout(mqtt_factory):
    """A subscriber that does not read, and so is not read from, sends
    nothing within its keep-alive: the master closes the connection once it
    has written what it still owes, and lets it go after idle_timeout when
    the peer does not read that either."""
    b = mqtt_factory({"client_output_limit": OUTPUT, "idle_timeout": "1",
                      "log_type": "information"})
    pub = b.publisher()
    pub.publish("owed/t", "first")             # its topicd starts
    base = b.status()[0]["clients"]
    slow = SilentSubscriber(b.mqtt_port, "owed-slow", "owed/t", keepalive=2)
    for k in range(0, COUNT, BATCH):
        pub.publish_pipelined([("owed/t", payload(i)) for i in range(k, k + BATCH)])
    wait_for(lambda: "id owed-slow: closed: keep-alive expired" in b.log_text(), 10,
             "the keep-alive to close the connection")
    wait_for(lambda: b.status()[0]["clients"] == base, 10,
             "the closed connection that does not read to be let go")
    assert "owed-slow: output not read within idle_timeout: dropped" in b.log_text()
    slow.close()


def test_a_publisher_held_back_longer_than_its_keep_alive_is_not_cut_off(mqtt_factory):
    """An MQTT publisher the broker stops reading (its topicd does not
    keep up) cannot be heard meanwhile, PINGREQs included: its keep-alive
    does not expire while the broker holds it back, and once the topicd
    reads on, every message arrives."""
    b = mqtt_factory({"topicd_input_limit": "256k"})
    sub = Receiver(lambda: b.mqtt_port, "ka-sub", clean=True)
    sub.connect()
    assert sub.subscribe([("ka/t", 0)]) == [0]
    sub.start()
    flood = MqttFlood(b.mqtt_port, "ka/t", 64 << 10, client_id="ka-flood", keepalive=1)
    flood.sock.sendall(flood.line(0))           # its topicd starts for it
    flood.lines = 1

    def started():
        # Its keep-alive is 1 s: not silent while the topicd starts, which
        # takes longer than that on a loaded machine.
        flood.sock.sendall(pingreq_packet())
        return len(sub.arrivals) >= 1 and b.topicd_pid("ka/t")
    tpid = wait_for(started, 20, "the first message, and the topic's topicd")
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        time.sleep(3)                   # twice the 1.5 s the keep-alive allows
    finally:
        kill_pid(tpid, signal.SIGCONT)
    flood.rest()
    sub.wait_until(lambda: len(sub.arrivals) >= flood.lines, 60,
                   "all %d messages after the topicd went on" % flood.lines)
    assert sub.payloads() == [flood.payload(i) for i in range(flood.lines)]
    assert "keep-alive expired" not in b.log_text()


# ---------------------------------------------------------------- QoS 0 floods

BIG = 64 << 10          # payload bytes
INPUT = 256 << 10       # topicd_input_limit
IPC_SLACK = 1 << 20     # what the socket to a topicd holds, and one held publish


def test_a_qos0_flood_waits_for_a_topicd_that_does_not_keep_up(mqtt_factory):
    """QoS 0 publishes have no answer to wait for: the master queues them
    for the topicd until topicd_input_limit bytes wait, then stops reading
    the publisher (its memory grew by the topicd's backlog without bound
    before).  Once the topicd reads on, so does the broker, and a
    subscriber that keeps reading gets every message, in order."""
    b = mqtt_factory({"topicd_input_limit": "256k"})
    sub = Receiver(lambda: b.mqtt_port, "q0-sub", clean=True)
    sub.connect()
    assert sub.subscribe([("q0/t", 0)]) == [0]
    sub.start()
    flood = MqttFlood(b.mqtt_port, "q0/t", BIG)
    flood.sock.sendall(flood.line(0))           # its topicd starts for it
    flood.lines = 1
    sub.wait_until(lambda: len(sub.arrivals) >= 1, 20, "the first message")
    tpid = b.wait_topicd("q0/t")
    before, _ = b.status()
    kill_pid(tpid, signal.SIGSTOP)              # the topicd stops reading
    try:
        flood.until_blocked()
        master, topics = b.status()
    finally:
        kill_pid(tpid, signal.SIGCONT)
    taken = master["messages_in"] - before["messages_in"]
    assert taken * BIG <= INPUT + IPC_SLACK, \
        "the master took %d messages of %d bytes for a stopped topicd (%d sent), " \
        "with topicd_input_limit %d" % (taken, BIG, flood.lines - 1, INPUT)
    assert topics["q0/t"]["held"] <= 1, topics["q0/t"]
    assert flood.lines - 1 > taken, "the flood was never stopped"

    flood.rest()
    sub.wait_until(lambda: len(sub.arrivals) >= flood.lines, 60,
                   "all %d messages after the topicd went on" % flood.lines)
    assert sub.payloads() == [flood.payload(i) for i in range(flood.lines)]


def test_a_session_back_with_every_packet_id_bound_gets_its_deliveries_again(mqtt_factory):
    """An MQTT 5.0 session that takes up to 65,535 (its Receive Maximum)
    and answers nothing has 16,384 deliveries in flight, the most the
    broker keeps, when it goes.  Back, they are stale until their topicds
    send them again, which they do through the delivery socket: so the
    broker reads it, and the session gets all 16,384 again as DUPs (it got
    none before: the stale ones kept the socket unread)."""
    from mqtt_helpers import CONNECT, PUBACK, PUBLISH, connected_client, publish_packet
    from mqtt5_helpers import V5Client, props
    topics, each, most = 17, 1000, 16384
    b = mqtt_factory({"max_inflight_messages": 1024})
    cprops = props(CONNECT, SessionExpiryInterval=600)
    c = V5Client(b.mqtt_port, name="bound")
    c.connect5_ok("bound", clean=False, cprops=cprops)
    assert c.subscribe5([("bound/#", 1)]).codes == [1]
    pub = connected_client(b.mqtt_port, "bound-pub")
    pid = 0
    for t in range(topics):
        batch = b""
        for i in range(each):
            pid = pid % 65535 + 1
            batch += publish_packet("bound/%d" % t, b"%d-%d" % (t, i), 1, pid)
        pub.send(batch)
        for _ in range(each):
            pub.expect(PUBACK, timeout=30)

    def take(client, n):
        got = set()
        while len(got) < n:
            p = client.read_packet(timeout=30)
            if p.type == PUBLISH:
                got.add(p.pid)
        return got
    first = take(c, most)
    c.expect_silence(0.5)
    c.close()
    c = V5Client(b.mqtt_port, name="bound-2")
    assert c.connect5_ok("bound", clean=False, cprops=cprops).session_present
    dups, new = set(), set()
    while not first <= dups:
        p = c.read_packet(timeout=30)
        if p.type == PUBLISH:
            (dups if p.dup else new).add(p.pid)
    assert not dups & new
    assert len(first) + len(new) <= each * topics


HELD_MAX = 512 << 10    # max_held_bytes


def test_publishes_held_for_many_topicds_are_bounded_together(mqtt_factory):
    """topicd_input_limit bounds what the master queues for one topicd;
    max_held_bytes bounds it for all together (clients that come and go
    spread a flood over many topics).  Four topicds stop reading while a
    QoS 0 flood goes to each: past max_held_bytes, a topic with anything
    queued for its topicd holds its publishes and stalls its publisher, so
    the master holds the bound and at most two messages a topic (one
    queued, one held), well below four topicd_input_limits.  Once the
    topicds read on, every message arrives, in order."""
    b = mqtt_factory({"max_held_bytes": "512k"})
    sub = Receiver(lambda: b.mqtt_port, "hb-sub", clean=True)
    sub.connect()
    assert sub.subscribe([("hb/#", 0)]) == [0]
    sub.start()
    floods = [MqttFlood(b.mqtt_port, "hb/%d" % i, BIG, client_id="hb-flood%d" % i)
              for i in range(4)]
    for f in floods:
        f.sock.sendall(f.line(0))               # its topicd starts for it
        f.lines = 1
    sub.wait_until(lambda: len(sub.arrivals) >= len(floods), 20, "each first message")
    pids = [b.wait_topicd("hb/%d" % i) for i in range(len(floods))]
    before, _ = b.status()
    for pid in pids:
        kill_pid(pid, signal.SIGSTOP)           # the topicds stop reading
    try:
        for f in floods:
            f.until_blocked()
        master, _ = b.status()
    finally:
        for pid in pids:
            kill_pid(pid, signal.SIGCONT)
    taken = master["messages_in"] - before["messages_in"]
    assert master["held_over"], master
    assert taken * BIG <= HELD_MAX + len(floods) * IPC_SLACK, \
        "the master took %d messages of %d bytes with max_held_bytes %d" % (
            taken, BIG, HELD_MAX)
    assert master["held_bytes"] + master["queued_bytes"] <= HELD_MAX + 2 * len(floods) * BIG, \
        master
    for f in floods:
        f.rest()
    total = sum(f.lines for f in floods)
    sub.wait_until(lambda: len(sub.arrivals) >= total, 60,
                   "all %d messages after the topicds went on" % total)
    for i, f in enumerate(floods):
        assert sub.payloads("hb/%d" % i) == [f.payload(k) for k in range(f.lines)]
    wait_for(lambda: not b.status()[0]["held_over"], 10, "the master below max_held_bytes")


def test_past_max_held_bytes_topics_that_keep_up_go_on(mqtt_factory):
    """A full topic (max_topic_size, its subscriber offline) holds what is
    published to it, past max_held_bytes: its publishers wait, and a
    client that publishes to a topic whose topicd keeps up goes on."""
    b = mqtt_factory({"max_topic_size": "200k", "max_held_bytes": "60k"})
    s = connected_client(b.mqtt_port, "hg-s", clean=False)
    assert s.subscribe([("full/t", 1)]) == [1]
    s.disconnect()
    s.expect_closed()
    pubs = [connected_client(b.mqtt_port, "hg-p%d" % i) for i in range(4)]
    for k in range(20):
        for p in pubs:
            p.send(publish_packet("full/t", b"y" * 20000, 1, k + 1))
    wait_for(lambda: b.status()[0]["held_over"], 10, "the master past max_held_bytes")
    q = connected_client(b.mqtt_port, "hg-q")
    for i in range(5):
        q.publish("healthy/t", b"m%d" % i, 1)
    assert b.status()[0]["held_over"]


def test_past_max_held_bytes_a_subscriber_that_publishes_is_still_heard(mqtt_factory):
    """A full topic (max_topic_size) waits for its subscriber's PUBACKs,
    and its publishers' publishes take the master past max_held_bytes.
    The subscriber publishes once to another topic before it acks: it
    is still read (stalling every client that publishes would leave the
    topic full for good), and every publisher gets all its PUBACKs."""
    b = mqtt_factory({"max_topic_size": "200k", "max_held_bytes": "60k"})
    s = connected_client(b.mqtt_port, "hd-s")
    assert s.subscribe([("hd/t", 1)]) == [1]
    pubs = [connected_client(b.mqtt_port, "hd-p%d" % i) for i in range(4)]
    for k in range(20):
        for p in pubs:
            p.send(publish_packet("hd/t", b"y" * 20000, 1, k + 1))
    wait_for(lambda: b.status()[0]["held_over"], 10, "the master past max_held_bytes")
    got = []
    while True:             # all the full topic has room for, sent at once
        try:
            got.append(s.expect(PUBLISH, timeout=0.5).pid)
        except HarnessError:
            break
    assert got, "the full topic sent nothing"
    s.send(publish_packet("hd/other", b"hello", 0))
    for pid in got:
        s.send(ack_packet(PUBACK, pid))
    acked = {p: 0 for p in pubs}

    def all_acked():
        for c in pubs:
            try:
                c.expect(PUBACK, timeout=0.05)
                acked[c] += 1
            except HarnessError:
                pass
        try:
            s.send(ack_packet(PUBACK, s.expect(PUBLISH, timeout=0.05).pid))
        except HarnessError:
            pass
        return sum(acked.values()) == 80
    wait_for(all_acked, 60, "all 80 publishes acknowledged")


def test_a_topic_at_its_size_limit_says_so_at_notice_once_a_minute(mqtt_factory):
    """A topic at max_topic_size whose subscriber takes every message
    fills and empties again and again: "no room" and "room again" go at
    notice once (a minute at most; the topicd's line and the master's),
    the other times at information; every message arrives, in order."""
    n = 300
    b = mqtt_factory({"max_topic_size": "10k", "log_type": "information"})
    sub = Receiver(lambda: b.mqtt_port, "fl-sub", clean=True)
    sub.connect()
    assert sub.subscribe([("fl/t", 1)]) == [1]
    sub.start()
    pub = connected_client(b.mqtt_port, "fl-pub")
    sent = [b"%04d" % i + b"x" * 996 for i in range(n)]
    for i, payload in enumerate(sent):
        pub.send(publish_packet("fl/t", payload, 1, i + 1))
    assert {pub.expect(PUBACK, timeout=30).pid for _ in range(n)} == set(range(1, n + 1))
    sub.wait_until(lambda: len(sub.arrivals) >= n, 30, "all %d messages" % n)
    assert sub.payloads() == sent
    text = b.log_text()

    def lines(level, what):
        return len(re.findall(r"\[\d+\]: %s: topic fl/t: %s" % (level, what), text))
    assert lines("(?:notice|information)", "no room") >= 8, \
        "the topic did not fill again and again"
    for what in ("no room", "room again"):
        assert lines("notice", what) == 2, "%d lines %r at notice" % (lines("notice", what), what)


def test_connections_past_max_connections_are_logged_at_most_once_a_second(broker_factory):
    """A fleet that reconnects while the broker is full is refused at
    every attempt, hundreds a second: each is closed at once, and the
    refusals are logged at most once a second, with a count, not a
    warning line each."""
    import socket
    b = broker_factory({"max_connections": 2})
    # The harness's own connections (it waits for the ports) count until
    # the master has seen them close.
    wait_for(lambda: b.status()[0]["clients"] == 0, 10, "no connection")
    held = [socket.create_connection(("127.0.0.1", b.publisher_port)) for _ in range(2)]
    wait_for(lambda: b.status()[0]["clients"] == 2, 10, "the two connections")
    t0 = time.monotonic()
    for _ in range(300):
        with socket.create_connection(("127.0.0.1", b.publisher_port)) as s:
            s.settimeout(5)
            assert s.recv(16) == b"", "a connection past max_connections is closed at once"
    took = time.monotonic() - t0
    wait_for(lambda: "refused so far" in b.log_text(), 10, "the refusals in the log")
    lines = re.findall(r"warning: client \S+ refused: 2 connections, max_connections is 2"
                       r" \((\d+) refused so far\)", b.log_text())
    assert lines, b.log_text()[-2000:]
    assert len(lines) <= int(took) + 2, "%d lines for 300 refusals in %.1f s" % (len(lines), took)
    assert lines[0] == "1", lines
    for s in held:
        s.close()
    wait_for(lambda: b.status()[0]["clients"] == 0, 10, "the held connections to be gone")
    b.publisher().publish("after", "taken again")
