"""Rules about the YAML itself: syntax, safety, size, encoding and document shape."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

import pytest

from reconciler.load.yaml_source import MAX_FILE_BYTES

from .cli_runner import assert_single_problem, assert_valid, only_problem

if TYPE_CHECKING:
    from pathlib import Path

    from .cli_runner import Workspace


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            """
            version: 1
            schedules:
              a: {task: t, every: 5
              b: {task: t, every: 5}
            """,
            "s.yaml:4:4",
            "YAML syntax error: while parsing a flow mapping, expected ',' or '}', but got ':'",
            id="unclosed-flow-mapping",
        ),
        pytest.param(
            """
            version: 1
            schedules:
              a:
                task: t
               every: 5
            """,
            "s.yaml:5:4",
            "YAML syntax error: while parsing a block mapping",
            id="bad-indentation",
        ),
        pytest.param(
            """
            version: 1
            schedules:
              a: {task: "t, every: 5}
            """,
            "s.yaml:4:1",
            "YAML syntax error: while scanning a quoted scalar",
            id="unclosed-quote",
        ),
        pytest.param(
            "version: 1\nschedules:\n\ta: {task: t, every: 5}\n",
            "s.yaml:3:1",
            "YAML syntax error: while scanning for the next token, found character '\\t' that "
            "cannot start any token (YAML cannot indent with tabs; use spaces)",
            id="tab-indentation",
        ),
    ],
)
def test_yaml_syntax_error_points_at_the_line(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


def _marker_tags(marker: Path) -> dict[str, str]:
    """YAML tags that would create ``marker`` if a loader constructed them."""
    quoted = json.dumps(str(marker))
    return {
        "os-system": f"!!python/object/apply:os.system [{json.dumps(f'touch {marker}')}]",
        "open-apply": f'!!python/object/apply:builtins.open [{quoted}, "w"]',
        "open-new": f'!!python/object/new:builtins.open [{quoted}, "w"]',
        "custom-tag": f"!foo [{quoted}]",
    }


@pytest.mark.parametrize("tag_id", ["os-system", "open-apply", "open-new", "custom-tag"])
def test_object_tag_in_an_entry_is_refused_and_not_executed(
    workspace: Workspace, tag_id: str
) -> None:
    marker = workspace.root / "executed"
    tagged = _marker_tags(marker)[tag_id]
    tag = tagged.split(" ", 1)[0]
    run = workspace.check(
        f"""
        version: 1
        schedules:
          job:
            task: app.tasks.job
            every: 5m
            args: [{tagged}]
        """
    )
    assert_single_problem(run, "s.yaml:6:12", f"YAML tag '{tag}' is not allowed")
    assert "plain data" in run.problems[0]
    assert not marker.exists(), "the YAML tag was executed"


@pytest.mark.parametrize("tag_id", ["os-system", "open-apply", "open-new", "custom-tag"])
def test_object_tag_as_the_whole_document_is_refused_and_not_executed(
    workspace: Workspace, tag_id: str
) -> None:
    marker = workspace.root / "executed"
    tagged = _marker_tags(marker)[tag_id]
    tag = tagged.split(" ", 1)[0]
    run = workspace.check(tagged + "\n")
    assert_single_problem(run, "s.yaml:1:1", f"YAML tag '{tag}' is not allowed")
    assert not marker.exists(), "the YAML tag was executed"


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        pytest.param("!foo bar", "!foo", id="custom-scalar-tag"),
        pytest.param("!!python/name:os.system ''", "!!python/name:os.system", id="python-name"),
        pytest.param("!!python/tuple [1, 2]", "!!python/tuple", id="python-tuple"),
        pytest.param("!!set {a: null}", "!!set", id="yaml-set"),
        pytest.param("!!omap [{a: 1}]", "!!omap", id="yaml-omap"),
        pytest.param("!<tag:example.com,2000:x> 1", "tag:example.com,2000:x", id="verbatim-tag"),
    ],
)
def test_non_plain_data_tags_are_refused(workspace: Workspace, value: str, tag: str) -> None:
    run = workspace.check(
        f"""
        version: 1
        schedules:
          job:
            task: app.tasks.job
            every: 5m
            kwargs: {{value: {value}}}
        """
    )
    assert_single_problem(run, "s.yaml:6:21", f"YAML tag '{tag}' is not allowed")


def test_billion_laughs_fails_cleanly_and_fast(workspace: Workspace) -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    workspace.write(
        "bomb.yaml",
        "\n".join(
            ["version: 1", *levels, "schedules:", "  job: {task: t, every: 5, args: *i}", ""]
        ),
    )
    started = time.monotonic()
    run = workspace.validate("bomb.yaml")
    elapsed = time.monotonic() - started
    problem = only_problem(run)
    assert re.match(r"bomb\.yaml:\d+:\d+: document expands to more than 500000 values", problem)
    assert "(alias bomb?)" in problem
    assert elapsed < 5, f"alias bomb took {elapsed:.1f} s"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param(
            """
            version: 1
            schedules:
              job: &x {task: t, every: 5, args: [*x]}
            """,
            "s.yaml:3:8",
            id="entry-contains-itself",
        ),
        pytest.param(
            """
            version: 1
            schedules:
              job: &x {task: t, every: 5, kwargs: {self: *x}}
            """,
            "s.yaml:3:8",
            id="kwargs-contains-entry",
        ),
        pytest.param("&r [*r]\n", "s.yaml:1:1", id="document-contains-itself"),
    ],
)
def test_recursive_alias_fails_cleanly(workspace: Workspace, text: str, where: str) -> None:
    assert_single_problem(workspace.check(text), where, "recursive alias: a value contains itself")


def test_aliases_and_merge_keys_within_budget_are_plain_data(workspace: Workspace) -> None:
    run = workspace.check(
        """
        version: 1
        schedules:
          a: &base {task: app.tasks.job, every: 5m, options: {queue: q}}
          b: {<<: *base, every: 10m}
        """
    )
    assert_valid(run)
    assert run.summary == "2 schedules in 1 file are valid"


def test_file_over_4_mib_fails_cleanly(workspace: Workspace) -> None:
    head = b"version: 1\nschedules: {}\n"
    padding = b"#" * (MAX_FILE_BYTES + 1 - len(head) - 1) + b"\n"
    workspace.write_bytes("big.yaml", head + padding)
    run = workspace.validate("big.yaml")
    assert_single_problem(
        run,
        "big.yaml:1:1",
        f"file is {MAX_FILE_BYTES + 1} bytes, more than the {MAX_FILE_BYTES} allowed; "
        "split it into several files",
    )


def test_multi_document_file_fails(workspace: Workspace) -> None:
    run = workspace.check(
        """
        version: 1
        schedules: {}
        ---
        version: 1
        schedules: {}
        """
    )
    assert_single_problem(
        run, "s.yaml:3:1", "expected a single document in the stream, but found another document"
    )


def test_explicit_document_markers_are_fine(workspace: Workspace) -> None:
    assert_valid(workspace.check("---\nversion: 1\nschedules: {}\n...\n"))


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            """
            version: 1
            schedules:
              job: {task: t, every: 5}
              job: {task: u, every: 6}
            """,
            "s.yaml:4:3",
            "duplicate key 'job' (first defined at line 3)",
            id="entry-name",
        ),
        pytest.param(
            """
            version: 1
            schedules:
              job:
                task: t
                every: 5
                task: u
            """,
            "s.yaml:6:5",
            "duplicate key 'task' (first defined at line 4)",
            id="entry-key",
        ),
        pytest.param(
            """
            version: 1
            schedules: {}
            version: 1
            """,
            "s.yaml:3:1",
            "duplicate key 'version' (first defined at line 1)",
            id="top-level-key",
        ),
        pytest.param(
            """
            version: 1
            schedules:
              job: {task: t, every: 5, kwargs: {a: 1, b: 2, a: 3}}
            """,
            "s.yaml:3:49",
            "duplicate key 'a' (first defined at line 3)",
            id="kwargs-key",
        ),
    ],
)
def test_duplicate_yaml_keys_name_both_lines(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


def test_non_utf8_bytes_fail_cleanly(workspace: Workspace) -> None:
    workspace.write_bytes(
        "latin1.yaml", b"version: 1\nschedules:\n  job: {task: caf\xe9, every: 5}\n"
    )
    run = workspace.validate("latin1.yaml")
    # The offending byte is the é of "café": line 3, column 18.
    assert_single_problem(
        run, "latin1.yaml:3:18", "file is not UTF-8 text: byte 0xe9 cannot be decoded"
    )


def test_utf8_byte_order_mark_is_accepted(workspace: Workspace) -> None:
    workspace.write_bytes("bom.yaml", b"\xef\xbb\xbfversion: 1\nschedules: {}\n")
    assert_valid(workspace.validate("bom.yaml"))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="zero-bytes"),
        pytest.param("# nothing here yet\n", id="only-a-comment"),
        pytest.param("\n\n\n", id="blank-lines"),
    ],
)
def test_empty_file_fails(workspace: Workspace, text: str) -> None:
    run = workspace.check(text)
    assert_single_problem(
        run, "s.yaml:1:1", "file is empty; expected 'version: 1' and a 'schedules' mapping"
    )


def test_empty_document_fails(workspace: Workspace) -> None:
    run = workspace.check("---\n")
    # libyaml places the empty document's null at the end of the stream (line 2)
    problem = only_problem(run)
    assert problem.startswith("s.yaml:"), problem
    assert "file is empty; expected 'version: 1' and a 'schedules' mapping" in problem


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        pytest.param(
            "- version: 1\n- schedules: {}\n",
            "file holds a list; expected a mapping with 'version: 1' and 'schedules'",
            id="list",
        ),
        pytest.param(
            "just some text\n",
            "file holds the string 'just some text'; expected a mapping",
            id="string",
        ),
        pytest.param("42\n", "file holds int 42; expected a mapping", id="number"),
    ],
)
def test_file_that_is_not_a_mapping_fails(workspace: Workspace, text: str, phrase: str) -> None:
    assert_single_problem(workspace.check(text), "s.yaml:1:1", phrase)
