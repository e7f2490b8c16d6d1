"""Containerfile parsing: every instruction, substitution, stages and error lines."""

from __future__ import annotations

import textwrap

import pytest

from strata.build.containerfile import (
    Add,
    Arg,
    Cmd,
    Containerfile,
    ContainerfileError,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    expand_word,
    parse_containerfile,
)


def parse(text: str, **kw: object) -> Containerfile:
    return parse_containerfile(textwrap.dedent(text).lstrip("\n"), **kw)  # type: ignore[arg-type]


def only(text: str, **kw: object) -> Instruction:
    cf = parse("FROM scratch\n" + textwrap.dedent(text).lstrip("\n"), **kw)
    assert len(cf.stages) == 1 and len(cf.stages[0].instructions) == 1
    return cf.stages[0].instructions[0]


def error(text: str, **kw: object) -> ContainerfileError:
    with pytest.raises(ContainerfileError) as info:
        parse(text, **kw)
    return info.value


# --------------------------------------------------------------------------- instructions


def test_from_with_stage_name_and_global_arg() -> None:
    cf = parse(
        """
        ARG TAG=3.19
        FROM docker.io/library/alpine:${TAG} AS Builder
        FROM builder
        """
    )
    assert [(s.name, s.base, s.line, s.index) for s in cf.stages] == [
        ("builder", "docker.io/library/alpine:3.19", 2, 0),
        (None, "builder", 3, 1),
    ]
    assert cf.global_args == (
        Arg(keyword="ARG", line=1, raw="ARG TAG=3.19", pairs=(("TAG", "3.19"),)),
    )
    assert cf.stage("BUILDER") is cf.stages[0] and cf.stage("1") is cf.stages[1]


def test_run_shell_exec_and_network() -> None:
    run = only("RUN apt-get update && \\\n    apt-get install -y curl\n")
    assert isinstance(run, Run)
    assert run.command == "apt-get update &&     apt-get install -y curl"
    assert run.network == "default" and run.line == 2
    exec_form = only('RUN ["/bin/sh", "-c", "echo $HOME"]')
    assert isinstance(exec_form, Run) and exec_form.command == ("/bin/sh", "-c", "echo $HOME")
    net = only("RUN --network=none make test")
    assert isinstance(net, Run) and net.network == "none" and net.command == "make test"
    broken_json = only("RUN [not json")
    assert isinstance(broken_json, Run) and broken_json.command == "[not json"


def test_run_keeps_variables_and_records_build_args() -> None:
    cf = parse(
        """
        FROM scratch
        ARG VERSION=1.0
        ENV HOME=/root
        RUN echo $VERSION ${HOME}
        """,
        build_args={"VERSION": "2.0", "UNDECLARED": "x"},
    )
    run = cf.stages[0].instructions[-1]
    assert isinstance(run, Run)
    assert run.command == "echo $VERSION ${HOME}"  # the shell expands at run time
    assert run.build_args == (("VERSION", "2.0"),)


def test_copy_flags_json_and_substitution() -> None:
    cf = parse(
        """
        FROM scratch AS deps
        FROM scratch
        ARG APP=/srv/app
        ARG OWNER=1000:1000
        COPY --from=deps --chown=$OWNER --chmod=0755 a.txt b/ ${APP}/
        COPY ["with space.txt", "$APP/x y.txt"]
        """
    )
    first, second = cf.stages[1].instructions[2:]
    assert first == Copy(
        keyword="COPY",
        line=5,
        raw="COPY --from=deps --chown=$OWNER --chmod=0755 a.txt b/ ${APP}/",
        sources=("a.txt", "b/"),
        dest="/srv/app/",
        from_stage="deps",
        chown="1000:1000",
        chmod=0o755,
    )
    assert isinstance(second, Copy)
    assert second.sources == ("with space.txt",) and second.dest == "/srv/app/x y.txt"


def test_add_with_checksum() -> None:
    add = only("ADD --checksum=sha256:abc --chown=1:2 https://example.com/x.tgz /opt/")
    assert isinstance(add, Add)
    assert add.sources == ("https://example.com/x.tgz",) and add.dest == "/opt/"
    assert add.checksum == "sha256:abc" and add.chown == "1:2" and add.chmod is None


def test_env_forms_and_same_instruction_semantics() -> None:
    cf = parse(
        """
        FROM scratch
        ENV A=1 B="two words" C=$A D='$A' E=a\\ b
        ENV LEGACY some value with   spaces
        ENV F=${A}-${LEGACY:+set}
        """
    )
    first, legacy, third = cf.stages[0].instructions
    assert isinstance(first, Env) and isinstance(legacy, Env) and isinstance(third, Env)
    # C sees A from *before* this instruction (unset), like Docker
    assert first.pairs == (("A", "1"), ("B", "two words"), ("C", ""), ("D", "$A"), ("E", "a b"))
    assert legacy.pairs == (("LEGACY", "some value with   spaces"),)
    assert third.pairs == (("F", "1-set"),)


def test_arg_scoping_and_build_args() -> None:
    cf = parse(
        """
        ARG GLOBAL=g
        ARG BASE=scratch
        FROM $BASE
        ARG GLOBAL
        ARG LOCAL=${GLOBAL}-l
        ARG NODEFAULT
        WORKDIR /$GLOBAL/$LOCAL/$NODEFAULT
        FROM scratch
        WORKDIR /x$GLOBAL
        """,
        build_args={"NODEFAULT": "nd"},
    )
    arg_global, arg_local, arg_nodefault, workdir = cf.stages[0].instructions
    assert isinstance(arg_local, Arg) and arg_local.pairs == (("LOCAL", "g-l"),)
    assert isinstance(arg_global, Arg) and arg_global.pairs == (("GLOBAL", None),)
    assert isinstance(arg_nodefault, Arg)
    assert isinstance(workdir, Workdir) and workdir.path == "/g/g-l/nd"
    second = cf.stages[1].instructions[0]
    assert isinstance(second, Workdir) and second.path == "/x"  # global ARG not redeclared


def test_env_overrides_arg_and_base_env_is_visible() -> None:
    cf = parse(
        """
        FROM golang:1.22 AS build
        ARG GOPATH=/ignored
        WORKDIR $GOPATH/src
        ENV GOPATH=/work
        WORKDIR $GOPATH/src
        FROM build
        USER ${GOPATH}
        """,
        base_env=lambda ref: {"GOPATH": "/go"} if ref.startswith("golang") else {},
    )
    first, second = cf.stages[0].instructions[1], cf.stages[0].instructions[3]
    assert isinstance(first, Workdir) and first.path == "/go/src"  # base ENV beats ARG
    assert isinstance(second, Workdir) and second.path == "/work/src"
    user = cf.stages[1].instructions[0]
    assert isinstance(user, User) and user.user == "/work"  # inherited from stage "build"


def test_label_maintainer_and_legacy_label() -> None:
    cf = parse(
        """
        FROM scratch
        ARG V=1
        LABEL org.opencontainers.image.version=$V "com.example.desc"="a \\"quoted\\" desc"
        LABEL legacy value here
        MAINTAINER Jane Doe <jane@example.com>
        """
    )
    label, legacy, maintainer = cf.stages[0].instructions[1:]
    assert isinstance(label, Label)
    assert label.pairs == (
        ("org.opencontainers.image.version", "1"),
        ("com.example.desc", 'a "quoted" desc'),
    )
    assert isinstance(legacy, Label) and legacy.pairs == (("legacy", "value here"),)
    assert isinstance(maintainer, Label) and maintainer.keyword == "MAINTAINER"
    assert maintainer.pairs == (("maintainer", "Jane Doe <jane@example.com>"),)


def test_workdir_user_stopsignal_volume_expose() -> None:
    cf = parse(
        """
        FROM scratch
        ENV P=8080 D=/data
        WORKDIR /app dir
        USER 1000:1000
        STOPSIGNAL SIGTERM
        VOLUME ["/var/lib/db", "$D"]
        VOLUME /a /b
        EXPOSE 80 $P/udp 9000-9002/TCP 80/tcp
        """
    )
    _, workdir, user, signal, vol_json, vol_plain, expose = cf.stages[0].instructions
    assert isinstance(workdir, Workdir) and workdir.path == "/app dir"
    assert isinstance(user, User) and user.user == "1000:1000"
    assert isinstance(signal, StopSignal) and signal.signal == "SIGTERM"
    assert isinstance(vol_json, Volume) and vol_json.paths == ("/var/lib/db", "/data")
    assert isinstance(vol_plain, Volume) and vol_plain.paths == ("/a", "/b")
    assert isinstance(expose, Expose)
    assert expose.ports == ("80/tcp", "8080/udp", "9000/tcp", "9001/tcp", "9002/tcp")


def test_cmd_entrypoint_shell_forms() -> None:
    cf = parse(
        """
        FROM scratch
        SHELL ["/bin/bash", "-o", "pipefail", "-c"]
        CMD ["nginx", "-g", "daemon off;"]
        CMD echo $HOME
        ENTRYPOINT ["/entrypoint.sh"]
        ENTRYPOINT exec /app --flag
        """
    )
    shell, cmd_exec, cmd_shell, ep_exec, ep_shell = cf.stages[0].instructions
    assert isinstance(shell, Shell) and shell.argv == ("/bin/bash", "-o", "pipefail", "-c")
    assert isinstance(cmd_exec, Cmd) and cmd_exec.command == ("nginx", "-g", "daemon off;")
    assert isinstance(cmd_shell, Cmd) and cmd_shell.command == "echo $HOME"
    assert isinstance(ep_exec, Entrypoint) and ep_exec.command == ("/entrypoint.sh",)
    assert isinstance(ep_shell, Entrypoint) and ep_shell.command == "exec /app --flag"


def test_healthcheck_forms() -> None:
    check = only(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 "
        "CMD curl -f http://localhost/ || exit 1"
    )
    assert isinstance(check, Healthcheck)
    assert check.command == "curl -f http://localhost/ || exit 1"
    assert check.interval == 90_000_000_000 and check.timeout == 500_000_000
    assert check.start_period == 2_000_000_000 and check.retries == 3
    exec_check = only('HEALTHCHECK CMD ["/bin/check", "--quick"]')
    assert isinstance(exec_check, Healthcheck) and exec_check.command == ("/bin/check", "--quick")
    none = only("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.command is None


def test_onbuild_is_recorded_not_run() -> None:
    trigger = only("ONBUILD COPY . /app/src")
    assert isinstance(trigger, Onbuild) and trigger.trigger == "COPY . /app/src"


def test_comments_keywords_case_crlf_and_bom() -> None:
    text = (
        "\ufeff# leading comment\r\nfrom scratch\r\n# between\r\n"
        "run echo a \\\r\n  # in continuation\r\n  b\r\n"
    )
    cf = parse_containerfile(text)
    run = cf.stages[0].instructions[0]
    assert isinstance(run, Run) and run.command == "echo a   b" and run.line == 4


def test_escape_directive_backtick() -> None:
    cf = parse(
        """
        # escape=`
        FROM scratch
        WORKDIR C:\\app
        RUN dir `
            /s
        ENV X=a`$b
        """
    )
    workdir, run, env = cf.stages[0].instructions
    assert cf.escape == "`"
    assert isinstance(workdir, Workdir) and workdir.path == "C:\\app"
    assert isinstance(run, Run) and run.command == "dir     /s" and run.line == 4
    assert isinstance(env, Env) and env.pairs == (("X", "a$b"),)


def test_syntax_directive_accepted_or_refused() -> None:
    cf = parse("# syntax=docker/dockerfile:1.7\nFROM scratch\n")
    assert cf.syntax == "docker/dockerfile:1.7"
    err = error("# syntax=example.com/custom/frontend:1\nFROM scratch\n")
    assert err.line == 1 and "syntax" in str(err)


def test_multi_stage_copy_from_index() -> None:
    cf = parse(
        """
        FROM scratch AS a
        COPY x /x
        FROM scratch
        COPY --from=0 /x /y
        COPY --from=registry.example/img:1 /z /z
        """
    )
    assert len(cf.stages) == 2
    first, second = cf.stages[1].instructions
    assert isinstance(first, Copy) and first.from_stage == "0"
    assert isinstance(second, Copy) and second.from_stage == "registry.example/img:1"


# --------------------------------------------------------------------------- substitution


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "a"),
        ("${A}x", "ax"),
        ("$A_B", "ab"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${A}}", "a"),
        ("'$A'", "$A"),
        ('"$A $UNSET"', "a "),
        ('"\\$A"', "$A"),
        ("\\$A", "$A"),
        ('"a\\b"', "a\\b"),
        ("$", "$"),
        ("a$-b", "a$-b"),
    ],
)
def test_expand_word(word: str, expected: str) -> None:
    env = {"A": "a", "A_B": "ab", "EMPTY": ""}
    assert expand_word(word, env) == expected


@pytest.mark.parametrize(
    "word", ["${UNSET:?must be set}", "${A/x/y}", "${A", "'open", '"open', "${}"]
)
def test_expand_word_errors(word: str) -> None:
    with pytest.raises(ContainerfileError):
        expand_word(word, {"A": "a"}, line=7)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("FROM scratch\nFROBNICATE x\n", 2, "unknown instruction"),
        ("FROM scratch\nRUN <<EOF\necho hi\nEOF\n", 2, "heredoc"),
        ("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n", 2, "heredoc"),
        ("FROM scratch\n\nRUN --mount=type=cache,target=/c make\n", 3, "--mount"),
        ("FROM --platform=linux/arm64 scratch\n", 1, "--platform"),
        ("FROM scratch\nCOPY --link a /b\n", 2, "--link"),
        ("FROM scratch\nCOPY --bogus=1 a /b\n", 2, "unknown flag"),
        ("FROM scratch\nADD --from=x a /b\n", 2, "COPY --from"),
        ("FROM scratch\nRUN\n", 2, "requires"),
        ("FROM scratch\nRUN", 2, "requires arguments"),
        ("FROM scratch\nRUN echo \\", 2, "end of file"),
        ("RUN echo hi\nFROM scratch\n", 1, "before the first FROM"),
        ("FROM scratch AS a\nFROM scratch AS A\n", 2, "duplicate stage"),
        ("FROM scratch AS 1bad\n", 1, "invalid stage name"),
        ("FROM a b\n", 1, "AS name"),
        ("FROM scratch\nENV ONLYKEY\n", 2, "needs a value"),
        ('FROM scratch\nENV A="unterminated\n', 2, "double quote"),
        ("FROM scratch\nCOPY onlyone\n", 2, "source and a destination"),
        ("FROM scratch\nCOPY --chmod=u+x a /b\n", 2, "octal"),
        ("FROM scratch\nCOPY --from=0 a /b\n", 2, "no earlier stage"),
        ("FROM scratch\nEXPOSE 99999\n", 2, "invalid port"),
        ("FROM scratch\nSHELL /bin/sh -c\n", 2, "JSON array"),
        ("FROM scratch\nHEALTHCHECK --interval=soon CMD true\n", 2, "duration"),
        ("FROM scratch\nHEALTHCHECK --retries=3 NONE\n", 2, "NONE"),
        ("FROM scratch\nHEALTHCHECK curl x\n", 2, "CMD"),
        ("FROM scratch\nONBUILD FROM alpine\n", 2, "ONBUILD trigger"),
        ("FROM scratch\nRUN --network=bridge x\n", 2, "--network"),
        ("FROM scratch\nWORKDIR ${X:?X is required}\n", 2, "X is required"),
        ("ARG A=1\n", None, "no FROM"),
        ("", None, "no FROM"),
    ],
)
def test_errors_carry_line_numbers(text: str, line: int | None, fragment: str) -> None:
    err = error(text)
    assert err.line == line
    assert fragment in str(err)
    if line is not None:
        assert f"line {line}" in str(err)


def test_error_line_of_continued_instruction_is_its_first_line() -> None:
    err = error("FROM scratch\nRUN echo one \\\n  two\nCOPY --nope=1 \\\n  a b\n")
    assert err.line == 4 and str(err).startswith("line 4:")


def test_empty_continuation_lines_are_skipped() -> None:
    cf = parse("FROM scratch\nRUN a \\\n\n  b\nCMD c\n")
    run, cmd = cf.stages[0].instructions
    assert isinstance(run, Run) and run.command == "a   b"
    assert isinstance(cmd, Cmd) and cmd.line == 5
