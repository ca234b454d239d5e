"""sgdvi.infra.rulelog: a workflow script's messages and its failure's traceback reach the log."""

import logging
import os
import re
import subprocess
import sys
import textwrap

import pytest

from sgdvi.infra.rulelog import history_path, rule_log


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
    header, first, second = [line for line in text.splitlines() if line][:3]
    assert header.startswith("==== attempt 1 | train_like | ")
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


def test_attempts_survive_snakemake_deleting_the_log(tmp_path):
    """An interrupted run's record must survive: Snakemake deletes the log before a rerun;
    every attempt is kept, each after a header with its number, time and where it resumed from."""
    path = tmp_path / "logs" / "train" / "exp.log"
    path.parent.mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with rule_log(path, "train") as log:
            log.info("epoch 1/5")
            raise RuntimeError("killed")
    path.unlink()  # what Snakemake does before it runs the job again
    with rule_log(path, "train", resumed_from="checkpoint c.pt: epoch 2, after step 0") as log:
        log.info("epoch 2/5")
    path.unlink()
    with rule_log(path, "train") as log:
        log.info("epoch 3/5")
    lines = [line for line in path.read_text().splitlines() if line]
    headers = [line for line in lines if line.startswith("==== attempt")]
    assert [h.split(" | ")[0] for h in headers] == [f"==== attempt {i}" for i in (1, 2, 3)]
    assert re.search(r"\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|", headers[1])
    assert headers[1].endswith("resumed from checkpoint c.pt: epoch 2, after step 0 ====")
    assert "resumed" not in headers[2]
    order = [i for i, line in enumerate(lines) if "epoch" in line or "failed" in line]
    assert "epoch 1/5" in lines[order[0]] and "train failed" in lines[order[1]]
    assert "epoch 2/5" in lines[order[3]] and "epoch 3/5" in lines[order[-1]]
    assert history_path(path).read_text() == path.read_text()


def test_attempt_killed_with_sigkill_is_kept(tmp_path):
    """A process killed -9 runs no cleanup: the history must already hold its lines."""
    path = tmp_path / "r.log"
    code = textwrap.dedent(
        f"""
        import os, signal
        from sgdvi.infra.rulelog import rule_log
        with rule_log({str(path)!r}, "train") as log:
            log.info("epoch 7 done")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    path.unlink()
    with rule_log(path, "train") as log:
        log.info("rerun")
    text = path.read_text()
    assert "epoch 7 done" in text and "==== attempt 2 |" in text and "rerun" in text


def test_without_hard_links_the_history_is_copied_and_mirrored(tmp_path, monkeypatch):
    path = tmp_path / "r.log"
    with rule_log(path, "a") as log:
        log.info("first")
    path.unlink()

    def no_link(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    with rule_log(path, "a") as log:
        log.info("second")
    for f in (path, history_path(path)):
        text = f.read_text()
        assert "first" in text and "second" in text and "==== attempt 2 |" in text
