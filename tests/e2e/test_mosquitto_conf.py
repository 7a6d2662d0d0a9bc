"""A configuration written for mosquitto: its keys that mean the same here
are taken under their names (persistence_location is data_dir), those
whose value this broker always has are taken and change nothing, every
other is an error that says what to write instead; and include_dir reads
a directory of .conf files, at start and again on SIGHUP."""

import subprocess

from broker_harness import add_root_user, broker_binary

# Debian's /etc/mosquitto/mosquitto.conf (mosquitto 2.0.11), with its
# paths under the test's directory.
DEBIAN_DEFAULT = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file {d}/run/mosquitto.pid

persistence true
persistence_location {d}/lib/mosquitto/

log_dest file {d}/log/mosquitto.log

include_dir {d}/conf.d
"""


def broker(tmp_path, *args):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    if "-c" in args:
        add_root_user(args[list(args).index("-c") + 1])
    return subprocess.run([str(broker_binary())] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                          cwd=str(work))


def dump(tmp_path, conf):
    """{key: value} as `broker -T -c conf` prints the effective settings."""
    res = broker(tmp_path, "-T", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()
    out = {}
    for line in res.stdout.decode().splitlines():
        if not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value)
    return out


def test_debians_default_file_passes_unchanged(tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(DEBIAN_DEFAULT.format(d=tmp_path))
    (tmp_path / "log").mkdir()             # the package makes /var/log/mosquitto
    (tmp_path / "lib").mkdir()             # and /var/lib/mosquitto's parent is there
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "README").write_text("Any files placed in this directory that"
                                                " have a .conf ending will be loaded\n")
    res = broker(tmp_path, "-t", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.decode() == "%s: configuration ok\n" % conf
    # persistence_location is where the data goes.
    assert dump(tmp_path, conf)["data_dir"] == "%s/lib/mosquitto/" % tmp_path


def test_aliases_take_effect(tmp_path):
    conf = tmp_path / "m.conf"
    (tmp_path / "psk").write_text("alice:00112233\n")
    conf.write_text("port 18990\npersistence_location /srv/data\npsk_file %s/psk\n"
                    "listener 8883\npsk_hint h\nciphers_tls1.3 TLS_AES_256_GCM_SHA384\n"
                    % tmp_path)
    out = dump(tmp_path, conf)
    assert out["mqtt_port"] == "18990", out
    assert out["data_dir"] == "/srv/data", out
    assert out["ciphersuites"] == "TLS_AES_256_GCM_SHA384", out


def test_what_this_broker_always_does_is_taken(tmp_path):
    conf = tmp_path / "m.conf"
    conf.write_text("persistence true\nset_tcp_nodelay yes\nretain_available 1\n"
                    "log_timestamp true\nallow_zero_length_clientid true\n"
                    "autosave_interval 1800\nautosave_on_changes false\n")
    res = broker(tmp_path, "-t", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()


def test_every_other_mosquitto_key_says_what_to_do(tmp_path):
    conf = tmp_path / "m.conf"
    conf.write_text("persistence false\nconnection_messages true\nmemory_limit 0\n"
                    "upgrade_outgoing_qos true\nauth_plugin /usr/lib/x.so\n"
                    "persistence_file mosquitto.db\nconnection bridge-01\n"
                    "no_such_key 1\nbridge_cafile /etc/ca.crt\nbridge_protocol_version mqttv311\n")
    res = broker(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2
    assert res.stderr.decode().splitlines() == ["%s:%d: %s" % (conf, n, m) for n, m in [
        (1, "'persistence false' is mosquitto's: every message is stored on disk here,"
            " always: only 'persistence true' is taken"),
        (2, "'connection_messages' is mosquitto's: connections are logged at log_type"
            " information here: remove the line"),
        (3, "'memory_limit' is mosquitto's: queues are on disk here, not in memory: see"
            " max_topic_size and max_store_size"),
        (4, "'upgrade_outgoing_qos' is mosquitto's: not supported: remove the line"),
        (5, "'auth_plugin' is mosquitto's: plugins are not supported; password_file,"
            " acl_file and psk_file are built in"),
        (6, "'persistence_file' is mosquitto's: a store per topic is kept under data_dir"
            " here, not one file: remove the line"),
        (7, "'connection' is mosquitto's: bridges are not supported"),
        (8, "unknown key 'no_such_key'"),
        (9, "'bridge_cafile' is mosquitto's: bridges are not supported"),
        (10, "'bridge_protocol_version' is mosquitto's: bridges are not supported"),
    ]]


def test_an_error_in_an_included_file_names_it(tmp_path):
    conf = tmp_path / "b.conf"
    conf.write_text("include_dir conf.d\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-ok.conf").write_text("retry_interval 2\n")
    (tmp_path / "conf.d" / "20-bad.conf").write_text("\nretry_interval soon\n")
    res = broker(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2
    assert res.stderr.decode().startswith(
        "%s/conf.d/20-bad.conf:2: bad value 'soon' for key 'retry_interval'" % tmp_path), \
        res.stderr.decode()


def test_a_file_of_junk_is_a_hundred_errors_and_a_count(tmp_path):
    """A stray file in include_dir is not millions of lines of errors."""
    conf = tmp_path / "b.conf"
    conf.write_text("include_dir conf.d\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "stray.conf").write_text("x\n" * 100000)
    res = broker(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 101, lines[-3:]
    assert lines[99] == "%s/conf.d/stray.conf:100: unknown key 'x'" % tmp_path
    assert lines[100] == "and 99900 more errors, not shown"


def test_sighup_reads_the_included_directory_again(broker_factory):
    b = broker_factory(start=False, conf_text="include_dir conf.d\n")
    confd = b.workdir / "conf.d"
    confd.mkdir(parents=True)
    (confd / "10-retry.conf").write_text("retry_interval 3\n")
    b.start()
    (confd / "20-inflight.conf").write_text("max_inflight_messages 10\n")
    log = b.reload()
    assert "reload: max_inflight_messages changed" in log, log
    assert "reload: retry_interval changed" not in log, log
    assert "configuration re-read, 1 setting changed" in log, log
    # A file taken away is a key back at its default.
    (confd / "10-retry.conf").unlink()
    log = b.reload()
    assert "reload: retry_interval changed" in log, log


def test_include_dir_reads_its_files_in_mosquittos_order(tmp_path):
    """mosquitto loads an include_dir's files in case-insensitive
    alphabetical order (a letter's capital before its small one):
    a.conf before B.conf, so B.conf's value is the one that stays."""
    conf = tmp_path / "m.conf"
    conf.write_text("include_dir %s/conf.d\n" % tmp_path)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("retry_interval 2\n")
    (tmp_path / "conf.d" / "B.conf").write_text("retry_interval 3\n")
    assert dump(tmp_path, conf)["retry_interval"] == "3"


def test_a_mosquitto_key_that_cannot_be_taken_is_explained(tmp_path):
    """ciphers_tls1.3 outside a listener block (where ciphersuites is not a
    key) and autosave_interval without a value are errors that say
    something: not "(null)"."""
    for text in ("ciphers_tls1.3 TLS_AES_256_GCM_SHA384\n", "autosave_interval\n"):
        conf = tmp_path / "m.conf"
        conf.write_text(text)
        res = broker(tmp_path, "-t", "-c", conf)
        err = res.stderr.decode()
        assert res.returncode == 2, (text, err)
        assert "(null)" not in err, (text, err)
