"""Start-up with a bad configuration file fails with FILE:LINE: message
and exit status 2; a good one starts."""

import subprocess

import pytest

from broker_harness import HOST, broker_binary, free_ports

BAD = [
    pytest.param("retry_interval 0.5\nno_such_key 1\n", 2, id="unknown-key"),
    pytest.param("# comment\n\nretry_interval soon\n", 3, id="bad-number"),
    pytest.param("max_delivery_attempts 0\n", 1, id="out-of-range"),
    pytest.param("message_size_limit 12q\n", 1, id="bad-size"),
]


def run_broker(tmp_path, text):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    data = tmp_path / "data"
    data.mkdir()
    c, p = free_ports(2)
    cmd = [str(broker_binary()), "-c", str(conf), "-D", str(data), "-b", HOST,
           "-p", "0", "-J", "%d:%d" % (c, p)]
    # run() kills the broker by pid if it does not exit by itself.
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return conf, res


@pytest.mark.parametrize("text,line", BAD)
def test_bad_configuration_is_refused(tmp_path, text, line):
    conf, res = run_broker(tmp_path, text)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, "exit status %s, expected 2; stderr:\n%s" % (res.returncode, err)
    assert "%s:%d: " % (conf, line) in err, \
        "no `%s:%d: message` on stderr:\n%s" % (conf, line, err)


def test_every_error_is_reported(tmp_path):
    conf, res = run_broker(tmp_path, "bogus 1\nretry_interval x\nalso_bogus 2\n")
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, err
    for line in (1, 2, 3):
        assert "%s:%d: " % (conf, line) in err, err


def test_good_configuration_starts(broker_factory):
    b = broker_factory({"retry_interval": 0.3, "max_delivery_attempts": 3,
                        "message_size_limit": "64k", "idle_timeout": 30,
                        "restart_backoff_min": 0.05, "restart_backoff_max": 1,
                        "crash_limit": 5, "crash_window": 60, "max_topics": 100,
                        "max_held_publishes": 100, "dead_letter_topic": "dead.letters"})
    c = b.consumer("cfg")
    c.subscribe("cfg")
    c.subscribe("dead.letters")
    b.publisher().publish("cfg", "x")
    assert c.wait_messages(1, "cfg") == ["x"]
    # The dead-letter topic has the configured name.
    p = b.publisher()
    p.send_line("not json")
    p.expect("INVALID JSON")
    recs = c.wait_messages(1, "dead.letters")
    assert isinstance(recs[0], dict) and recs[0].get("reason") == "invalid_json", recs
    c.settle()
    assert not c.errors, c.errors
