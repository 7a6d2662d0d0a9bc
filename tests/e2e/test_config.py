"""Start-up with a bad configuration file fails with FILE:LINE: message
and exit status 2; a good one starts.  `broker -t` checks a file without
starting anything, `broker -T` prints the effective configuration, and the
example etc/broker.conf and broker.conf(5) describe every key."""

import os
import pwd
import re
import signal
import subprocess

import pytest

from broker_harness import (HOST, REPO_ROOT, add_root_user, broker_binary, free_ports,
                            settings_table, wait_for)

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
    # Logged at level error, then what to do.
    assert re.search(r"^\S+ broker\[\d+\]: error: %s:%d: " % (re.escape(str(conf)), line),
                     err, re.M), "no `error: %s:%d: message` on stderr:\n%s" % (conf, line, err)
    assert re.search(r"broker\[\d+\]: error: not started: 1 error in the configuration; "
                     r"correct it, then check with broker -t -c %s$" % re.escape(str(conf)),
                     err, re.M), err
    assert "warning:" not in err, err


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


# ---------------------------------------------------------------- -t, -T, the example

EXAMPLE = REPO_ROOT / "etc" / "broker.conf"
KEY_LINE = re.compile(r"^#(\w+)(?: (.*))?$")


def check(tmp_path, *args):
    """broker -t/-T ... in an empty directory: it must create nothing."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    res = subprocess.run([str(broker_binary())] + [str(a) for a in args],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                         cwd=str(work))
    assert list(work.iterdir()) == [], "-t created %s" % list(work.iterdir())
    return res


def defaults(tmp_path):
    """{key: value or None} as `broker -T` prints the built-in defaults."""
    res = check(tmp_path, "-T")
    assert res.returncode == 0, res.stderr.decode()
    out = {}
    for line in res.stdout.decode().splitlines():
        m = re.match(r"^(#?)(\w+)(?: (.*))?$", line)
        assert m, "bad -T line %r" % line
        out[m.group(2)] = None if m.group(1) else m.group(3)
    return out


def test_check_only_accepts_a_good_file(tmp_path):
    conf = tmp_path / "good.conf"
    conf.write_text("retry_interval 2.5\nlog_dest file broker.log\npid_file broker.pid\n")
    add_root_user(conf)
    res = check(tmp_path, "-t", "-c", conf, "-D", "data")
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.decode() == "%s: configuration ok\n" % conf


def test_a_key_given_twice_is_a_warning_and_the_last_line_applies(tmp_path):
    """As in mosquitto the last line applies; unlike mosquitto, -t (and the
    log, at a start or reload) says which line replaced another.  Keys
    that are lists (log_type, log_dest) add up, silently."""
    conf = tmp_path / "twice.conf"
    conf.write_text("max_topicds 50\nlog_type notice\nretry_interval 3\n"
                    "max_topicds 60\nlog_type information\n")
    add_root_user(conf)
    res = check(tmp_path, "-t", "-c", conf, "-D", "data")
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.decode() == "%s: configuration ok\n" % conf
    assert res.stderr.decode() == \
        "warning: %s:4: max_topicds given again: this line replaces the one before\n" % conf
    res = check(tmp_path, "-T", "-c", conf, "-D", "data")
    assert res.returncode == 0, res.stderr.decode()
    assert "\nmax_topicds 60\n" in res.stdout.decode(), res.stdout.decode()


def test_check_only_reports_every_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("retry_interval soon\n# fine\nmax_topics 0\nno_such_key 1\n"
                    "log_type loud\nmessage_size_limit 1q\nlog_dest file a.log\n"
                    "log_dest file b.log\n")
    res = check(tmp_path, "-t", "-c", conf)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert res.stdout == b""
    for line in (1, 3, 4, 5, 6, 8):
        assert "%s:%d: " % (conf, line) in err, err
    assert "bad value 'loud' for key 'log_type'" in err, err
    assert "%s:8: log_dest: only one file may be given, and %s:7 gives one already" \
        % (conf, conf) in err, err
    # Only the errors, as the README shows them (not log lines).
    assert all(l.startswith("%s:" % conf) for l in err.splitlines()), err


def test_check_only_finds_what_the_start_would(tmp_path):
    """broker -t checks what the start would find on this host, each at its
    line and with the file's own errors, all at once: the user (started as
    root), the listeners' addresses, the log file (not created)."""
    conf = tmp_path / "host.conf"
    user = "user no-such-user-for-broker\n" if os.geteuid() == 0 else ""
    conf.write_text(user + "bind_address 999.1.1.1\nmax_topics 0\n"
                    "log_dest file %s\nlistener 18883 999.2.2.2\nlistener 18884\n"
                    % (tmp_path / "missing" / "broker.log"))
    first = 2 if user else 1
    res = check(tmp_path, "-t", "-c", conf)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    want = ["%s:%d: bad value '0' for key 'max_topics'" % (conf, first + 1),
            "%s:%d: listener 18883 999.2.2.2: cannot resolve 999.2.2.2: " % (conf, first + 3),
            "%s:%d: bind_address: cannot resolve 999.1.1.1: " % (conf, first),
            "%s:%d: cannot open log file %s: No such file or directory: create its directory, "
            "or change log_dest" % (conf, first + 2, tmp_path / "missing" / "broker.log")]
    if user:
        want.append("%s:1: user no-such-user-for-broker does not exist: create it" % conf)
    for w in want:
        assert any(line.startswith(w) for line in err.splitlines()), \
            "no %r in:\n%s" % (w, err)
    assert len(err.splitlines()) == len(want), err
    assert res.stdout == b""
    # Given on the command line, the address is said to be.
    conf.write_text(user.replace("no-such-user-for-broker", "root"))
    res = check(tmp_path, "-t", "-c", conf, "-b", "999.3.3.3")
    assert res.returncode == 2
    assert res.stderr.decode().startswith("command line: bind_address: cannot resolve "
                                          "999.3.3.3: "), res.stderr.decode()
    # No listener on bind_address: it is not looked up.
    res = check(tmp_path, "-t", "-c", conf, "-b", "999.3.3.3", "-p", "0", "-J", "0:0")
    assert res.returncode == 0, res.stderr.decode()


def test_check_only_finds_an_address_not_of_this_host_and_a_data_directory(tmp_path):
    """An address that resolves but is no address of this host, and a data
    directory the start could not make or use, fail -t as they would fail
    the start; a data directory not given is not checked (a unit gives
    -D, which `broker -t -c FILE` does not see)."""
    if open("/proc/sys/net/ipv4/ip_nonlocal_bind").read().strip() != "0":
        pytest.skip("this host lets any address be bound (net.ipv4.ip_nonlocal_bind)")
    conf = tmp_path / "host.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    # 192.0.2.0/24 is for documentation: no host has it.
    conf.write_text(user + "bind_address 192.0.2.7\nlistener 18885 192.0.2.8\n")
    first = 2 if user else 1
    res = check(tmp_path, "-t", "-c", conf)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert err.splitlines() == [
        "%s:%d: listener 18885 192.0.2.8: 192.0.2.8 is not an address of this host: "
        "listen on one that is" % (conf, first + 1),
        "%s:%d: bind_address: 192.0.2.7 is not an address of this host: listen on one "
        "that is" % (conf, first)], err
    conf.write_text(user)
    (tmp_path / "file").write_text("")
    res = check(tmp_path, "-t", "-c", conf, "-D", tmp_path / "file")
    assert res.returncode == 2
    assert res.stderr.decode() == "command line: data directory %s is not a directory: " \
        "set data_dir\n" % (tmp_path / "file"), res.stderr.decode()
    conf.write_text(user + "data_dir %s\n" % (tmp_path / "no" / "such"))
    res = check(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2
    assert res.stderr.decode() == "%s:%d: cannot create data directory %s: No such file or " \
        "directory: create it, or set data_dir\n" % (conf, first, tmp_path / "no" / "such"), \
        res.stderr.decode()
    res = check(tmp_path, "-t", "-c", conf, "-D", tmp_path / "new")
    assert res.returncode == 0, res.stderr.decode()
    assert not (tmp_path / "new").exists()
    # Relative in the file: relative to where the broker will start.
    conf.write_text(user + "data_dir no/such\n")
    res = check(tmp_path, "-t", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()
    if user:
        # Started as root for another user, the directory must be that user's.
        (tmp_path / "data").mkdir()
        conf.write_text("user nobody\n")
        res = check(tmp_path, "-t", "-c", conf, "-D", tmp_path / "data")
        assert res.returncode == 2
        assert res.stderr.decode().startswith("command line: data directory %s belongs to "
                                              "root, not to user nobody: "
                                              % (tmp_path / "data")), res.stderr.decode()
        # Its own, but where it cannot reach it (tmp_path is 0700, root's).
        os.chmod(tmp_path, 0o700)
        nobody = pwd.getpwnam("nobody")
        os.chown(tmp_path / "data", nobody.pw_uid, nobody.pw_gid)
        res = check(tmp_path, "-t", "-c", conf, "-D", tmp_path / "data")
        assert res.returncode == 2
        assert res.stderr.decode() == "command line: data directory %s is not writable by " \
            "user nobody: Permission denied: let that user write it, or set data_dir\n" \
            % (tmp_path / "data"), res.stderr.decode()
        res = check(tmp_path, "-t", "-c", conf, "-D", tmp_path / "new")
        assert res.returncode == 2
        assert res.stderr.decode() == "command line: cannot create data directory %s for " \
            "user nobody: Permission denied: create it where that user can reach it, or " \
            "set data_dir\n" % (tmp_path / "new"), res.stderr.decode()


def test_check_only_names_the_key_of_a_file_it_cannot_read(tmp_path):
    conf = tmp_path / "files.conf"
    conf.write_text("password_file %s\nacl_file %s\n" % (tmp_path / "nopw", tmp_path))
    res = check(tmp_path, "-t", "-c", add_root_user(conf))
    err = res.stderr.decode().splitlines()
    assert res.returncode == 2
    assert ("%s: cannot open the password file: No such file or directory: check "
            "password_file" % (tmp_path / "nopw")) in err, err
    assert "%s: cannot read the ACL: not a regular file: check acl_file" % tmp_path in err, err


def test_command_line_help_version_and_a_stray_argument(tmp_path):
    res = check(tmp_path, "--help")
    assert res.returncode == 0 and res.stderr == b"", res.stderr.decode()
    assert res.stdout.decode().startswith("usage: broker "), res.stdout.decode()
    assert check(tmp_path, "-h").stdout == res.stdout
    version = check(tmp_path, "--version")
    assert version.returncode == 0
    assert re.match(r"^broker \d+\.\d+\.\d+\n$", version.stdout.decode()), version.stdout
    assert check(tmp_path, "-V").stdout == version.stdout
    res = check(tmp_path, "-t", "stray")
    assert res.returncode == 2 and res.stdout == b""
    assert res.stderr.decode().startswith("broker: unexpected argument 'stray'\nusage: "), \
        res.stderr.decode()
    res = check(tmp_path, "--bogus")
    assert res.returncode == 2 and "usage: broker" in res.stderr.decode()


def test_check_only_finds_a_pid_file_that_cannot_be_written(tmp_path):
    """The master writes its pid file once it is its user: broker -t
    checks it as that user (started as root), where the start would
    fail after binding its ports.  A directory that does not exist yet is
    not an error (systemd makes /run/broker at the start)."""
    root = "user root\n" if os.geteuid() == 0 else ""
    conf = tmp_path / "pid.conf"
    for pid in (tmp_path / "broker.pid", tmp_path / "run" / "broker.pid"):
        conf.write_text(root + "pid_file %s\n" % pid)
        res = check(tmp_path, "-t", "-c", conf)
        assert res.returncode == 0, res.stderr.decode()
        assert not pid.exists()                 # -t creates nothing
    # Where a file is in the way of its directory:
    (tmp_path / "file").write_text("")
    conf.write_text(root + "pid_file %s\n" % (tmp_path / "file" / "broker.pid"))
    res = check(tmp_path, "-t", "-c", conf)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert err.startswith("%s:%d: cannot write pid file %s" % (conf, 2 if root else 1,
                                                                tmp_path / "file" / "broker.pid"))
    assert "Not a directory" in err, err
    # Where a directory has its name:
    conf.write_text(root + "pid_file %s\n" % tmp_path)
    res = check(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2 and "Is a directory" in res.stderr.decode(), res.stderr.decode()
    if not root:
        return
    # As root, for the user it becomes: nobody cannot enter tmp_path (0700).
    os.chmod(tmp_path, 0o700)
    conf.write_text("user nobody\npid_file %s\n" % (tmp_path / "broker.pid"))
    res = check(tmp_path, "-t", "-c", conf)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert err.startswith("%s:2: cannot write pid file %s as user nobody: Permission denied: "
                          "let that user write it, or change pid_file"
                          % (conf, tmp_path / "broker.pid")), err


def test_check_only_reports_a_missing_file(tmp_path):
    res = check(tmp_path, "-t", "-c", tmp_path / "nope.conf")
    assert res.returncode == 2
    assert "nope.conf: cannot open: No such file or directory" in res.stderr.decode()


def test_dump_shows_the_effective_configuration(tmp_path):
    conf = tmp_path / "some.conf"
    conf.write_text("retry_interval 0.25\nmessage_size_limit 1048576\nlog_dest syslog\n"
                    "log_dest stderr\n")
    res = check(tmp_path, "-T", "-c", conf, "-J", "5000:5001")
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode().splitlines()
    for line in ("retry_interval 0.25", "message_size_limit 1m", "log_dest syslog",
                 "log_dest stderr", "json_consumer_port 5000", "json_publisher_port 5001",
                 "restart_backoff_min 0.1", "#pid_file", "use_username_as_clientid false"):
        assert line in out, out
    # A plain listener block shows its defaults too, and reads back as it is.
    conf.write_text("listener 18830\n")
    res = check(tmp_path, "-T", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()
    block = res.stdout.decode().split("\n\n")[1].splitlines()
    assert "tls_version tlsv1.2" in block, block
    again = tmp_path / "again.conf"
    again.write_text(res.stdout.decode())
    assert check(tmp_path, "-T", "-c", again).stdout == res.stdout


def test_example_lists_every_key_at_its_default(tmp_path):
    want = defaults(tmp_path)
    seen = {}
    for line in EXAMPLE.read_text().splitlines():
        m = KEY_LINE.match(line)
        if m and m.group(1) in want:
            assert m.group(1) not in seen, "%s listed twice" % m.group(1)
            seen[m.group(1)] = m.group(2)
    assert sorted(seen) == sorted(want), "keys missing from %s: %s" % (
        EXAMPLE.name, sorted(set(want) - set(seen)))
    for key, value in want.items():
        if value is not None:
            assert seen[key] == value, "%s: example %r, default %r" % (key, seen[key], value)


def test_example_gives_every_key_a_value(tmp_path):
    """Each key's line can be uncommented as it is: no bare `#key`."""
    want = defaults(tmp_path)
    bare = [line for line in EXAMPLE.read_text().splitlines()
            if KEY_LINE.match(line) and KEY_LINE.match(line).group(1) in want
            and KEY_LINE.match(line).group(2) is None]
    assert bare == [], bare
    conf = tmp_path / "anon.conf"
    conf.write_text("use_username_as_clientid false\nallow_anonymous true\n")
    res = check(tmp_path, "-t", "-c", add_root_user(conf))
    assert res.returncode == 0, res.stderr.decode()


def test_example_is_valid_as_is_and_uncommented(tmp_path):
    example = tmp_path / "example.conf"
    example.write_text(EXAMPLE.read_text())
    res = check(tmp_path, "-t", "-c", add_root_user(example))
    assert res.returncode == 0, res.stderr.decode()
    want = defaults(tmp_path)
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        m = KEY_LINE.match(line)
        if m and want.get(m.group(1)) is not None:
            line = line[1:]
        lines.append(line)
    conf = tmp_path / "uncommented.conf"
    conf.write_text("\n".join(lines) + "\n")
    res = check(tmp_path, "-T", "-c", conf)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == check(tmp_path, "-T").stdout


def test_every_key_is_documented(tmp_path):
    rows = settings_table()
    assert sorted(r[0] for r in rows) == sorted(defaults(tmp_path))
    page = (REPO_ROOT / "man" / "broker.conf.5").read_text()
    example = EXAMPLE.read_text()
    for key, typ, default, lo, hi, reload in rows:
        m = re.search(r"^\.It Cm %s Ar \S+\n(.*?)(?=^\.It Cm |^\.El)" % key, page, re.M | re.S)
        assert m, "broker.conf.5 does not describe %s" % key
        entry = m.group(1)
        if default is not None:
            assert "Default:\n.Li %s " % default in entry, "%s: default %s" % (key, default)
        else:
            assert "Default: " in entry, key
        if typ in ("UINT", "PORT", "SIZE", "MSEC") and (lo, hi) != ("0", "0"):
            assert "from %s to %s" % (lo, hi) in entry, "%s: bounds %s..%s" % (key, lo, hi)
        assert ("Reloadable." if reload else "Needs a restart.") in entry, key
        # The example says the same about reloading.
        block = re.search(r"((?:^# .*\n)+)#%s[ \n]" % key, example, re.M)
        assert block, "no help above #%s in the example" % key
        assert ("[reload]" if reload else "[restart]") in block.group(1), key


@pytest.mark.parametrize("text", ["listener abc\n", "listener 0\n", "listener 1883 a b\n",
                                  "sync_policy sometimes\n"])
def test_bad_listener_or_sync_policy_is_refused(tmp_path, text):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    res = check(tmp_path, "-t", "-c", conf)
    assert res.returncode == 2
    assert "%s:1: bad value " % conf in res.stderr.decode(), res.stderr.decode()


def v6only():
    try:
        return open("/proc/sys/net/ipv6/bindv6only").read(1) == "1"
    except OSError:
        return False


def test_check_refuses_a_wildcard_listener_on_a_port_in_use(tmp_path):
    """A block on 0.0.0.0 (or ::) takes its port on every address: -t
    refuses it next to a listener on 127.0.0.1 with the same port, as the
    start would fail to bind, and a broker started with it says so the
    same way, before binding anything."""
    c, p = free_ports(2)
    cases = [("json_consumer_port %d\nlistener %d 0.0.0.0\nprotocol mqtt\n" % (c, c),
              "2: listener %d 0.0.0.0: port %d on 0.0.0.0 is also json_consumer_port on "
              "127.0.0.1" % (c, c)),
             ("listener %d 0.0.0.0\nlistener %d 127.0.0.1\n" % (p, p),
              "2: listener %d 127.0.0.1: port %d on 127.0.0.1 is also the listener at "
              "{conf}:1 on 0.0.0.0" % (p, p))]
    if not v6only():
        cases.append(("listener %d 127.0.0.1\nlistener %d ::\n" % (p, p),
                      "2: listener %d ::: port %d on :: is also the listener at {conf}:1 on "
                      "127.0.0.1" % (p, p)))
    conf = tmp_path / "clash.conf"
    for text, error in cases:
        conf.write_text(text)
        res = check(tmp_path, "-t", "-c", add_root_user(conf))
        err = res.stderr.decode()
        assert res.returncode == 2, "-t passed:\n%s%s" % (text, err)
        assert err == "%s:%s\n" % (conf, error.format(conf=conf)), err
    # Started with the first, the broker refuses the file: exit 2.
    conf.write_text(cases[0][0])
    data = tmp_path / "data"
    data.mkdir()
    res = subprocess.run([str(broker_binary()), "-c", str(conf), "-D", str(data), "-b", HOST,
                          "-p", "0", "-J", "%d:%d" % (c, p)], stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=10)
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert "is also json_consumer_port on 127.0.0.1" in err, err
    # Other addresses of a family are no clash.
    conf.write_text("listener %d 127.0.0.1\nlistener %d 127.0.0.2\nlistener %d ::1\n"
                    % (p, p, p))
    res = check(tmp_path, "-t", "-c", add_root_user(conf))
    assert res.returncode == 0, res.stderr.decode()


def test_sync_policy_none_acknowledges_without_syncing(broker_factory):
    b = broker_factory({"sync_policy": "none"})
    c = b.consumer("syncless")
    c.subscribe("nosync")
    pub = b.publisher()
    for i in range(5):
        pub.publish("nosync", "m%d" % i)
    assert c.wait_messages(5, "nosync") == ["m%d" % i for i in range(5)]
    pid = b.topicd_pid("nosync")
    os.kill(pid, signal.SIGUSR1)
    pattern = re.compile(r"topicd\[%d\]: notice: status: topic nosync .* commits (\d+) " % pid)
    wait_for(lambda: pattern.search(b.log_text()), 10, "the topicd's status line")
    line = pattern.search(b.log_text())
    assert line.group(1) == "0", line.group(0)
