"""Fixtures for the end-to-end tests: brokers that are stopped by pid in
teardown (also when the test failed), clients that are closed, and the
tail of each broker's log attached to a failure report."""

import pytest

from broker_harness import Broker, JsonClient, Qos2Consumer
import mqtt_helpers

__all__ = ["broker_factory", "broker", "mqtt_factory", "mqtt_broker",
           "pytest_runtest_makereport"]


@pytest.fixture
def broker_factory(request, tmp_path):
    """make(config=None, name=None, start=True, mqtt=False, conf_text="")
    starts a broker and returns it (conf_text: lines after the config
    keys, such as listener blocks).  In
    teardown: consumer threads stopped (a protocol error any consumer
    recorded fails the test), clients closed, every broker stopped
    with SIGTERM (exit status 0 expected), its topicds gone, and its log
    free of sanitizer reports."""
    brokers = []
    clients = []
    consumers = []
    request.node.brokers = brokers
    JsonClient.registry = clients
    Qos2Consumer.registry = consumers

    def make(config=None, name=None, start=True, mqtt=False, conf_text=""):
        name = name or "broker%d" % len(brokers)
        b = Broker(tmp_path / name, config=config, name=name, mqtt=mqtt, conf_text=conf_text)
        brokers.append(b)
        if start:
            b.start()
        return b

    try:
        yield make
    finally:
        Qos2Consumer.registry = None
        JsonClient.registry = None
        problems = []
        for c in consumers:
            try:
                c.stop()
            except Exception as e:          # reported, teardown goes on
                problems.append("consumer %r: %s" % (c.username, e))
            problems.extend(c.protocol_problems())
        for c in clients:
            c.close()
        for b in brokers:
            if b.running():
                b.stop()
            b.reap_orphans()
            for how, code in b.exit_codes:
                if how == "stop" and code != 0:
                    problems.append("%s: master exited with status %s after SIGTERM"
                                    % (b.name, code))
            problems.extend("%s: %s" % (b.name, p) for p in b.problems)
            reports = b.sanitizer_reports()
            if reports:
                problems.append("%s: sanitizer reports in the log:\n    %s"
                                % (b.name, "\n    ".join(reports[:10])))
        if problems:
            pytest.fail("broker teardown:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    """A broker with the built-in defaults."""
    return broker_factory()


@pytest.fixture
def mqtt_factory(broker_factory):
    """make(config=None, name=None, start=True, conf_text="") starts a broker that also
    listens for MQTT (on broker.mqtt_port).  In teardown, before the
    brokers stop: every MQTT client the test made (mqtt_helpers) is closed
    and every client process it started is stopped by pid; a protocol
    error any MQTT receiver recorded fails the test."""
    registry = []
    mqtt_helpers.set_registry(registry)

    def make(config=None, name=None, start=True, conf_text=""):
        return broker_factory(config, name, start, mqtt=True, conf_text=conf_text)

    try:
        yield make
    finally:
        mqtt_helpers.set_registry(None)
        problems = mqtt_helpers.close_registered(registry)
        if problems:
            pytest.fail("MQTT client teardown:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def mqtt_broker(mqtt_factory):
    """A broker with the built-in defaults and an MQTT listener."""
    return mqtt_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "brokers", []):
            rep.sections.append(("log of %s (%s), last lines" % (b.name, b.log_path),
                                 b.log_tail(80)))
