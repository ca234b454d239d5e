"""sgdvi.rulelog: a workflow script's messages and its failure's traceback reach the log file."""

import logging

import pytest

from sgdvi.rulelog import rule_log


def test_messages_and_library_loggers_reach_the_file(tmp_path):
    path = tmp_path / "rule.log"
    with rule_log(path, "my_rule") as log:
        assert log.name == "my_rule"
        log.info("hello %d", 42)
        logging.getLogger("sgdvi.some.module").info("from the library")
        log.debug("not at INFO")
    text = path.read_text()
    assert "INFO hello 42" in text
    assert "from the library" in text
    assert "not at INFO" not in text


def test_exception_is_logged_with_traceback_and_propagates(tmp_path):
    path = tmp_path / "rule.log"

    def fail() -> None:
        raise ValueError("bad input: fix the config")

    with pytest.raises(ValueError, match="bad input"):
        with rule_log(path, "my_rule") as log:
            log.info("before the failure")
            fail()
            log.info("never reached")
    lines = path.read_text().splitlines()
    assert any(line.endswith("INFO before the failure") for line in lines)
    assert any(line.endswith("ERROR my_rule failed") for line in lines)
    text = "\n".join(lines)
    assert "Traceback (most recent call last):" in text
    assert "in fail" in text  # the frame that raised
    assert "ValueError: bad input: fix the config" in text
    assert "never reached" not in text


def test_custom_failure_format_and_stderr(tmp_path, capsys):
    path = tmp_path / "rule.log"
    with pytest.raises(RuntimeError):
        with rule_log(
            path,
            "train_like",
            fmt="%(levelname)s %(name)s: %(message)s",
            stderr=True,
            failure="prepare mnist7 failed",
        ) as log:
            log.info("progress 1/2")
            raise RuntimeError("boom")
    text = path.read_text()
    first, second = text.splitlines()[:2]
    assert first == "INFO train_like: progress 1/2"
    assert second == "ERROR train_like: prepare mnist7 failed"
    assert "RuntimeError: boom" in text
    err = capsys.readouterr().err
    assert "INFO train_like: progress 1/2" in err
    assert "RuntimeError: boom" in err


def test_capture_all_false_keeps_other_loggers_out(tmp_path):
    path = tmp_path / "rule.log"
    with rule_log(path, "sgdvi.training", capture_all=False) as log:
        log.info("mine")
        logging.getLogger("sgdvi.data").warning("not mine")
    text = path.read_text()
    assert "mine" in text
    assert "not mine" not in text


def test_handlers_removed_and_level_restored_on_exit(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    path = tmp_path / "rule.log"
    with pytest.raises(KeyError):
        with rule_log(path, "my_rule"):
            assert len(root.handlers) == len(before[0]) + 1
            raise KeyError("x")
    assert (list(root.handlers), root.level) == before
    logging.getLogger("my_rule").info("after the block")
    assert "after the block" not in path.read_text()
    # appends: a second run of the rule keeps the first run's lines
    with rule_log(path, "my_rule") as log:
        log.info("second run")
    text = path.read_text()
    assert "my_rule failed" in text and "second run" in text
