"""SIGHUP changes the reloadable settings of a running broker
(broker.conf(5) marks them; the table is broker/core/settings.c).  Each test
changes a kind of key in the file, reloads, and shows the new behaviour
on the running broker, not only the log line:

- limits the master checks at each event: max_connections,
  message_size_limit, idle_timeout;
- flow control: max_client_pending, client_output_limit,
  max_inflight_messages;
- logging (log_type, log_dest) and the $SYS timer (sys_interval);
- supervision of topicds: restart_backoff_min and _max;
- settings forwarded to the running topicds: retry_interval,
  max_delivery_attempts, sync_policy; checkpoint_size, which a topicd
  takes at its next start.

And every reloadable key is taken on reload without "needs a restart"
(crash_limit, obsolete, only draws a warning)."""

import json
import os
import re
import signal
import time

import pytest

from broker_harness import (DLQ, HOST, Flood, PublishRefused, check_dead_letter, kill_pid,
                            settings_table, wait_dead_letter, wait_for)
from mqtt_helpers import PUBACK, PUBLISH, SilentSubscriber, ack_packet, connected_client

EARLY = 0.05            # a broker timer may fire this much early by our clock
SLACK = 3.5             # how late a broker timer may fire on a loaded machine
QUIET = 0.5             # seconds over which an absence is watched
# psk_file needs a listener with psk_hint: its reload is test_tls_psk.py's.
LEFT_OUT = {"crash_limit", "psk_file"}


def changed(log, *keys):
    """The reload's log names every key as changed, none as needing a restart."""
    for k in keys:
        assert "reload: %s changed\n" % k in log, "no `reload: %s changed` in:\n%s" % (k, log)
    assert "next restart" not in log, log


# ---------------------------------------------------------------- master: limits

def test_sighup_changes_connection_limits_live(broker_factory):
    """max_connections, message_size_limit and idle_timeout are checked by
    the master at each connection, line and stall: after the reload they
    hold for the connections already open as for new ones."""
    b = broker_factory({"max_connections": 100, "message_size_limit": "64k",
                        "idle_timeout": 300})
    watch = b.consumer("limits")
    watch.subscribe("limits")
    pub = b.publisher()
    big = "b" * 2000
    pub.publish("limits", big)                          # under 64k: taken
    watch.wait_message(big, "limits")
    log = b.reload({"max_connections": 3, "message_size_limit": "1k", "idle_timeout": 1})
    changed(log, "max_connections", "message_size_limit", "idle_timeout")

    # message_size_limit: the same line is refused (ERROR, and the
    # connection ends); a line under the new limit is taken.
    with pytest.raises(PublishRefused) as refused:
        pub.pub("limits", big)
    assert "message_size_limit" in refused.value.line, refused.value.line
    pub.expect_closed()
    pub = b.publisher()
    small = "s" * 900
    pub.publish("limits", small)
    watch.wait_message(small, "limits")

    # idle_timeout: half a line on the open connection is closed after 1 s.
    t0 = time.monotonic()
    pub.send_raw(b'{"type":"PUB","to')
    pub.expect_closed(timeout=1 + SLACK)
    took = time.monotonic() - t0
    assert took >= 1 - EARLY, "closed %.2f s after half a line, idle_timeout is 1 s" % took

    # max_connections: the consumer and two more; the next is closed at once.
    def connections():
        return b.status()[0]["clients"]
    wait_for(lambda: connections() == 1, 10, "the closed publisher to be gone")
    second, third = b.publisher(), b.publisher()
    third.publish("limits", "third")
    refused_conn = b.publisher()
    assert refused_conn.expect_closed() == []
    wait_for(lambda: "refused: 3 connections, max_connections is 3" in b.log_text(), 10,
             "the refusal in the log")
    second.close()
    wait_for(lambda: connections() == 2, 10, "the second publisher to be gone")
    b.publisher().publish("limits", "a new one")
    watch.wait_message("a new one", "limits")


# ---------------------------------------------------------------- master: flow control

def test_sighup_changes_max_client_pending_live(broker_factory):
    """With its topicd stopped, a flooding publisher is read up to the
    reloaded max_client_pending, as the master's own figures show."""
    b = broker_factory({"max_client_pending": 8})
    b.publisher().publish("pending", "before")  # its topicd starts for it
    c = b.consumer("pending")
    c.subscribe("pending")
    changed(b.reload({"max_client_pending": 3}), "max_client_pending")
    tpid = b.wait_topicd("pending")
    before, _ = b.status()
    flood = Flood(b.publisher_port, "pending")
    kill_pid(tpid, signal.SIGSTOP)
    try:
        flood.until_blocked()
        master, topics = b.status()
    finally:
        kill_pid(tpid, signal.SIGCONT)
    assert (master["messages_in"] - before["messages_in"], topics["pending"]["held"]) == (3, 3), \
        (before, master, topics)
    flood.rest()
    assert flood.read_pubrecs(flood.lines) == list(range(1, flood.lines + 1))


def inflight_window(b, client_id, topic, publish):
    """How many QoS 1 deliveries a new subscriber gets without acknowledging
    any: it subscribes, `publish` sends it 8 messages, it counts the
    PUBLISHes that come, then checks the rest follow its PUBACKs."""
    c = connected_client(b.mqtt_port, client_id)
    assert c.subscribe([(topic, 1)]) == [1]
    publish()
    got = [c.expect(PUBLISH)]
    while True:
        try:
            got.append(c.expect(PUBLISH, timeout=QUIET))
        except AssertionError:          # nothing more within QUIET: the window is full
            break
    n = len(got)
    while len(got) < 8:
        c.send(ack_packet(PUBACK, got[len(got) - n].pid))
        got.append(c.expect(PUBLISH))
    assert [p.payload for p in got] == [b"w%d" % i for i in range(8)]
    c.close()
    return n


def test_sighup_changes_max_inflight_messages_live(mqtt_factory):
    b = mqtt_factory({"max_inflight_messages": 2})
    pub = connected_client(b.mqtt_port, "if-pub")

    def publish(topic):
        return lambda: [pub.publish(topic, b"w%d" % i, 1) for i in range(8)]
    assert inflight_window(b, "if-before", "if/a", publish("if/a")) == 2
    changed(b.reload({"max_inflight_messages": 5}), "max_inflight_messages")
    assert inflight_window(b, "if-after", "if/b", publish("if/b")) == 5


def test_sighup_changes_client_output_limit_live(mqtt_factory):
    """A subscriber that does not read: with client_output_limit 1g the
    master takes every delivery from the topicd into its own memory (the
    topicd has nobody behind); after the reload to 4k it takes no more, for
    the same connection, and what is published next waits in the topicd
    (the delivery socket between them holding no more than 64 KiB)."""
    b = mqtt_factory({"client_output_limit": "1g", "client_delivery_buffer": "64k"})
    slow = SilentSubscriber(b.mqtt_port, "ol-slow", "ol/t")
    pub = b.publisher()
    body = "o" * (16 << 10)
    sent = []

    def publish(n):
        items = [("ol/t", "%06d %s" % (len(sent) + i, body)) for i in range(n)]
        for k in range(0, n, 32):
            pub.publish_pipelined(items[k:k + 32])
        sent.extend(m.encode() for _, m in items)
    publish(320)                                # 5 MiB: more than the kernel buffers hold
    wait_for(lambda: b.topicd_status("ol/t")["lag"] == 0, 10,
             "the master to take every delivery (client_output_limit 1g)")
    changed(b.reload({"client_output_limit": "4k"}), "client_output_limit")
    publish(64)
    st = b.topicd_status("ol/t")
    assert st["lag"] > 0, "the master took every delivery with client_output_limit 4k"
    time.sleep(QUIET)                           # an absence of progress, watched over a period
    assert b.topicd_status("ol/t")["lag"] == st["lag"], "the master went on taking deliveries"
    assert slow.drain(len(sent)) == sent, "the subscriber's messages differ"


# ---------------------------------------------------------------- master: observing

def test_sighup_changes_logging_live(broker_factory, tmp_path):
    """log_type information logs each connection; log_dest adds a file."""
    logfile = tmp_path / "added.log"
    b = broker_factory({"log_type": "notice"})
    before = b.publisher()
    before.publish("logged", "x")
    log = b.reload({"log_type": "information", "log_dest": "stderr\nlog_dest file %s" % logfile})
    changed(log, "log_type", "log_dest")
    after = b.publisher()
    after.publish("logged", "y")
    line = "client %s:%d: connected" % (HOST, after.local_port)
    wait_for(lambda: line in b.log_text(), 10, "%r on stderr" % line)
    wait_for(lambda: logfile.exists() and line in logfile.read_text(), 10,
             "%r in the file log_dest added" % line)
    assert "client %s:%d: connected" % (HOST, before.local_port) not in b.log_text()


def test_a_reload_logs_what_its_acl_change_does_at_its_new_log_type(mqtt_factory, tmp_path):
    """A reload that both lowers log_type and changes the ACL logs what
    the new ACL makes the master and the topicds do (the subscriptions it
    takes back) at the new level, not at the one the reload ends."""
    acl = tmp_path / "levels.acl"
    acl.write_text("topic readwrite lvl/#\n")
    b = mqtt_factory({"log_type": "information", "acl_file": str(acl)})
    subs = [connected_client(b.mqtt_port, "lvl-%d" % i) for i in range(3)]
    for c in subs:
        assert c.subscribe([("lvl/t", 1)]) == [1]
    pub = connected_client(b.mqtt_port, "lvl-pub")
    pub.publish("lvl/t", b"m", qos=1)
    for c in subs:
        c.expect(PUBLISH)
    acl.write_text("topic readwrite other/#\n")
    start = len(b.log_text())
    log = b.reload({"log_type": "notice"})
    changed(log, "log_type")
    assert "reload: the ACL changed" in log, log
    wait_for(lambda: b.topicd_status("lvl/t")["subs"] == 0, 10,
             "the topicd to take the subscriptions back")
    after = b.log_text()[start:]
    assert "information:" not in after, after


def test_sighup_changes_sys_interval_live(mqtt_factory):
    b = mqtt_factory({"sys_interval": 60})
    c = connected_client(b.mqtt_port, "sys-reload")
    assert c.subscribe([("$SYS/broker/uptime", 0)]) == [0]
    first = c.expect(PUBLISH)                   # the value sent on SUBSCRIBE
    assert first.retain, first
    mark = time.monotonic()                     # before the reload re-arms the timer
    changed(b.reload({"sys_interval": 1}), "sys_interval")
    updates = [c.expect(PUBLISH, timeout=1 + SLACK) for _ in range(2)]
    took = time.monotonic() - mark
    assert [p.topic for p in updates] == ["$SYS/broker/uptime"] * 2
    assert took >= 1 - EARLY, "two updates %.2f s after the reload, sys_interval 1 s" % took


# ---------------------------------------------------------------- master: supervision

def test_sighup_changes_restart_backoff_live(broker_factory):
    """A topicd that existed before the reload is restarted after the new
    restart_backoff_min (50 ms), not the old one (30 s)."""
    # shutdown_timeout 1: a topic waiting 30 s for its restart holds a
    # request, which would keep the broker's shutdown waiting 5 s.
    b = broker_factory({"restart_backoff_min": 30, "restart_backoff_max": 30,
                        "shutdown_timeout": 1})
    b.publisher().publish("backoff", "m")
    old = b.wait_topicd("backoff")
    changed(b.reload({"restart_backoff_min": 0.05, "restart_backoff_max": 0.1}),
            "restart_backoff_min", "restart_backoff_max")
    kill_pid(old)
    m = wait_for(lambda: re.search(r"topic backoff: topicd .*; restarting in (\d+) ms",
                                   b.log_text()), 10, "the restart to be scheduled")
    assert int(m.group(1)) == 50, m.group(0)
    b.wait_topicd("backoff", timeout=SLACK, not_pid=old)


def test_sighup_restart_backoff_applies_to_new_topics(broker_factory):
    """A topic whose topicd first starts after the reload is restarted after
    the new restart_backoff_min."""
    b = broker_factory({"restart_backoff_min": 30, "restart_backoff_max": 30})
    changed(b.reload({"restart_backoff_min": 0.05, "restart_backoff_max": 0.1}),
            "restart_backoff_min", "restart_backoff_max")
    b.publisher().publish("backoff/new", "m")
    old = b.wait_topicd("backoff/new")
    kill_pid(old)
    m = wait_for(lambda: re.search(r"topic backoff/new: topicd .*; restarting in (\d+) ms",
                                   b.log_text()), 10, "the restart to be scheduled")
    assert int(m.group(1)) == 50, m.group(0)
    b.wait_topicd("backoff/new", timeout=SLACK, not_pid=old)


# ---------------------------------------------------------------- forwarded to topicds

def test_sighup_changes_retrial_in_running_topicds(broker_factory):
    """retry_interval and max_delivery_attempts reach a topicd that was
    already running: a silent consumer gets the message again after 0.3 s
    (not 30 s), twice in all (not five times), and when it logs in again
    the message has gone to the dead-letter topic."""
    b = broker_factory({"retry_interval": 30, "max_delivery_attempts": 5})
    dlq = b.consumer("rt-dlq")
    dlq.subscribe(DLQ)
    b.publisher().publish("rt", "before")       # its topicd starts for it
    silent = b.client()
    silent.expect("Please login!")
    silent.send_line("log rt-silent")
    silent.expect("Succesfully logged in!")
    silent.send_json({"type": "SUB", "topic": "rt"})
    silent.expect("OK")
    tpid = b.wait_topicd("rt")
    changed(b.reload({"retry_interval": 0.3, "max_delivery_attempts": 2}),
            "retry_interval", "max_delivery_attempts")
    t0 = time.monotonic()
    b.publisher().publish("rt", "poison")
    first = silent.read_line()
    again = silent.read_line(0.3 + SLACK)
    took = time.monotonic() - t0
    assert again == first, (first, again)
    assert took >= 0.3 - EARLY, "resent %.2f s after the publish, retry_interval 0.3 s" % took
    assert json.loads(first)["msg"] == "poison"
    silent.expect_silence(3 * 0.3)              # two sends in all: parked
    silent.close()
    # Logging in again: the message that used up its attempts is
    # dead-lettered, and the next one is delivered.
    b.publisher().publish("rt", "next")
    again = b.consumer("rt-silent")
    assert again.wait_messages(1, "rt") == ["next"]
    rec = wait_dead_letter(dlq, "max_attempts")
    check_dead_letter(rec, "max_attempts", ports=[b.consumer_port], topic="rt", msg="poison")
    assert b.topicd_pid("rt") == tpid, "the topicd was restarted: the test shows nothing"


def test_sighup_changes_sync_policy_in_running_topicds(broker_factory):
    """sync_policy none reaches a running topicd: its commit count (its
    own status line) stops growing while messages go on being stored and
    delivered."""
    b = broker_factory({"sync_policy": "batch"})
    c = b.consumer("sync")
    c.subscribe("sync")
    pub = b.publisher()

    def send(tag):
        for i in range(3):
            pub.publish("sync", "%s%d" % (tag, i))
        c.wait_message("%s2" % tag, "sync")
        c.settle()
    send("a")
    batch = b.topicd_status("sync")
    assert batch["commits"] >= 3, batch
    changed(b.reload({"sync_policy": "none"}), "sync_policy")
    send("b")
    none = b.topicd_status("sync")
    assert none["pid"] == batch["pid"], "the topicd was restarted: the test shows nothing"
    assert none["commits"] == batch["commits"], (batch, none)
    assert none["seq"] == batch["seq"] + 3, (batch, none)
    changed(b.reload({"sync_policy": "batch"}), "sync_policy")
    send("c")
    assert b.topicd_status("sync")["commits"] >= none["commits"] + 3
    assert c.messages("sync") == ["%s%d" % (t, i) for t in "abc" for i in range(3)]


def journal(b, topic):
    """The size of the journal of the topic's store (its segments)."""
    found = list((b.data_dir / "topics").glob("%s.journal.*" % topic.replace("/", "%2F")))
    assert found, "journal of %r: %s" % (topic, found)
    return sum(p.stat().st_size for p in found)


def test_sighup_checkpoint_size_applies_from_the_next_topicd_start(broker_factory):
    """A running topicd keeps its checkpoint size (and says so); a topicd
    started after the reload checkpoints at the new size, which keeps its
    journal short."""
    b = broker_factory({"checkpoint_size": "4m"})
    pub = b.publisher()
    pub.publish("ckptold", "first")
    old = b.wait_topicd("ckptold")
    log = b.reload({"checkpoint_size": "4k"})
    changed(log, "checkpoint_size")
    wait_for(lambda: "topic ckptold: the new checkpoint size applies from the next start"
             in b.log_text(), 10, "the running topicd to say when the new size applies")
    body = "k" * 1024
    for i in range(40):                         # 40 KiB, and no subscriber keeps them
        pub.publish("ckptold", body)
        pub.publish("ckptnew", body)
    assert journal(b, "ckptold") > 40 * 1024, "the running topicd checkpointed at 4k"
    # Checkpoints are written in the background: the journal shrinks soon.
    wait_for(lambda: journal(b, "ckptnew") < 8 * 1024, 10,
             "a topicd started after the reload to checkpoint at 4k")
    kill_pid(old)                               # its next start takes the new size
    b.wait_topicd("ckptold", not_pid=old)
    for i in range(10):
        pub.publish("ckptold", body)
    wait_for(lambda: journal(b, "ckptold") < 8 * 1024, 10,
             "the restarted topicd to checkpoint at 4k")


# ---------------------------------------------------------------- every key

NEW_VALUES = {
    "max_connections": "5000", "max_client_pending": "512", "client_output_limit": "128k",
    "connect_timeout": "20", "idle_timeout": "200", "message_size_limit": "128k",
    "retry_interval": "9",
    "max_delivery_attempts": "4", "max_inflight_messages": "10", "max_topics": "500",
    "sync_policy": "none", "checkpoint_size": "2m", "restart_backoff_min": "0.2",
    "restart_backoff_max": "20", "shutdown_timeout": "4", "sys_interval": "9",
    "log_dest": "stderr", "log_type": "notice", "crash_window": "30",
    "max_queued_messages": "5000", "max_held_publishes": "500", "poison_limit": "3",
    "topicd_input_limit": "8m", "client_delivery_buffer": "1m", "max_held_bytes": "128m",
    "max_topic_size": "1g", "max_store_size": "10g", "min_free_space": "50m",
    "max_topic_levels": "100", "max_subscriptions": "500", "max_topicds": "50",
    "topicd_idle_timeout": "30", "topicd_timeout": "45", "topicd_spares": "3",
    # Files in the broker's directory (written by the test), relative to it.
    "password_file": "auth.passwd", "acl_file": "auth.acl", "allow_anonymous": "true",
    "use_username_as_clientid": "true",
    "tls_handshake_timeout": "5", "websockets_headers_size": "8k",
    "max_keepalive": "120", "max_packet_size": "1m", "max_topic_alias": "20",
    "response_information": "replies/",
    "tcp_keepalive": "30",
}
# A password file as mosquitto_passwd writes it, and an ACL that lets
# anonymous clients (the test's) read and write everything.
AUTH_FILES = {
    "auth.passwd": "alice:$6$ZYOz3DMbBoSElNHJ$l0uFLL14uHDNaxZUUVlUVm8D56/EpJtzyjoDckY13jiqwu"
                   "CqtxTlD6JBftinYuib0vrPIGeAT67YDEr2q9LYWQ==\n",
    "auth.acl": "topic readwrite #\n",
}


def test_every_reloadable_key_is_taken_on_reload(broker_factory):
    reloadable = {k for k, _, _, _, _, r in settings_table() if r} - LEFT_OUT
    assert sorted(NEW_VALUES) == sorted(reloadable), \
        "reloadable keys without a test value, or not reloadable any more: %s" % sorted(
            set(NEW_VALUES) ^ reloadable)
    b = broker_factory()
    c = b.consumer("every")
    c.subscribe("every")
    for name, text in AUTH_FILES.items():
        (b.workdir / name).write_text(text)
        os.chmod(b.workdir / name, 0o600)
    log = b.reload(NEW_VALUES)
    changed(log, *sorted(NEW_VALUES))
    assert "configuration re-read, %d settings changed" % len(NEW_VALUES) in log, log
    b.publisher().publish("every", "still served")
    c.wait_message("still served", "every")
