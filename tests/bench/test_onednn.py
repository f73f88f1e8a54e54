"""`python -m image_completion.bench.onednn`: the oneDNN verbose parser, its sums and one run."""

import json

import pytest

from image_completion.bench import onednn

# Lines of a real `ONEDNN_VERBOSE=profile_exec` run (TensorFlow 2.21, oneDNN 3.7, AVX2-only EPYC),
# with the header and info lines that must be skipped.
VERBOSE = """\
onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time
onednn_verbose,v1,graph,info,template:operation,engine,partition_id,partition_kind,op_names,data_formats,logical_tensors,fpmath_mode,implementation,backend,exec_time
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:cdba::f0 dst:f32::blocked:Acdb32a::f0,,,32x3x3x3,0.5
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb32a::f0 bia:undef::undef::: dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,mb8_ic3oc32_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1,1.5
onednn_verbose,v1,primitive,exec,cpu,pooling,jit:avx2,forward_training,src:f32::blocked:acdb::f0 dst:f32::blocked:acdb::f0 ws:u8::blocked:acdb::f0,,alg:pooling_max,mb8ic32_ih64oh32kh2sh2dh0ph0_iw64ow32kw2sw2dw0pw0,1.0
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:cdba::f0 dst:f32::blocked:Acdb32a::f0,,,32x3x3x3,0.5
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb32a::f0 bia:undef::undef::: dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,mb8_ic3oc32_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1,1.5
something TensorFlow printed
"""


def test_only_exec_lines_are_parsed():
    records = [r for r in map(onednn.parse_exec_line, VERBOSE.splitlines()) if r]
    assert [r["kind"] for r in records] == ["reorder", "convolution", "pooling", "reorder", "convolution"]
    conv = records[1]
    assert conv["impl"] == "brg_conv_fwd:avx2" and conv["prop"] == "forward_training" and conv["ms"] == 1.5
    assert conv["problem"] == "mb8_ic3oc32_ih64oh64kh3sh1dh0ph1_iw64ow64kw3sw1dw0pw1"
    assert records[0]["memory"] == "src:f32::blocked:cdba::f0 dst:f32::blocked:Acdb32a::f0"


def test_the_onednn_2_line_format_is_parsed_too():
    line = "onednn_verbose,exec,cpu,convolution,jit:avx512_core_amx,forward_training,src_bf16::blocked:acdb:f0,,alg:convolution_direct,mb8_ic64oc64,0.25"
    assert onednn.parse_exec_line(line) == {
        "kind": "convolution",
        "impl": "jit:avx512_core_amx",
        "prop": "forward_training",
        "memory": "src_bf16::blocked:acdb:f0",
        "problem": "mb8_ic64oc64",
        "ms": 0.25,
    }


def test_summaries_are_per_step_and_their_shares_add_up():
    records = [r for r in map(onednn.parse_exec_line, VERBOSE.splitlines()) if r]
    summary = onednn.summarize(records, steps=2)
    assert summary["onednn_ms_per_step"] == pytest.approx(2.5) and summary["primitives_per_step"] == 2.5
    by_kind = {r["name"]: r for r in summary["by_kind"]}
    assert by_kind["convolution/forward_training"]["ms"] == pytest.approx(1.5)
    assert by_kind["convolution/forward_training"]["count"] == 1
    assert sum(r["share"] for r in summary["by_kind"]) == pytest.approx(1)
    assert sum(r["share"] for r in summary["by_impl"]) == pytest.approx(1)
    assert summary["by_kind"][0]["name"] == "convolution/forward_training"  # largest first
    (reorder,) = summary["reorders"]
    assert reorder["name"].endswith(" 32x3x3x3") and reorder["share"] == pytest.approx(0.2)
    (conv,) = summary["convolutions"]
    assert conv["name"].startswith("forward_training mb8_ic3oc32")


def test_the_steps_are_the_lines_between_the_markers_with_one_timing_line():
    timing = onednn.TIMING + json.dumps({"precision": "float32", "step_s": 0.5})
    out = f"before\n{onednn.START}\na\nb\n{timing}\n{onednn.END}\nafter\n"
    assert onednn.steps_lines(out) == (["a", "b"], {"precision": "float32", "step_s": 0.5})
    with pytest.raises(RuntimeError, match="markers"):
        onednn.steps_lines("no markers here\n")
    with pytest.raises(RuntimeError, match="0 timing lines"):
        onednn.steps_lines(f"{onednn.START}\na\n{onednn.END}\n")


def test_a_failed_step_process_is_named_by_its_error_line():
    stderr = "W0000 some warning\nTraceback (most recent call last):\n  File x\nValueError: boom\n\nI0000 exit log\n"
    assert onednn._child_failure(stderr) == "ValueError: boom"
    assert onednn._child_failure("") == "no message"


@pytest.mark.parametrize("steps", ["0", "101", "two"])
def test_a_step_count_out_of_range_is_a_usage_error(tiny_params_file, steps, capsys):
    with pytest.raises(SystemExit) as exit_info:
        onednn.main(["--params", str(tiny_params_file), "--steps", steps])
    assert exit_info.value.code == 2 and "--steps" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_sums_a_real_step(tiny_params_file, tmp_path, capsys):
    """The tiny params' first recipe, one step in a child process with the verbose timer."""
    out = tmp_path / "onednn.json"
    status = onednn.main(["--params", str(tiny_params_file), "--steps", "1", "--out", str(out)])
    captured = capsys.readouterr()
    printed = captured.out
    assert status == 0, captured.err
    summary = json.loads(out.read_text())
    assert summary["recipe"] == "paper" and summary["stage"] == 1 and summary["step_s"] > 0
    kinds = {r["name"] for r in summary["by_kind"]}
    assert {"convolution/forward_training", "convolution/backward_data", "convolution/backward_weights"} <= kinds
    assert sum(r["share"] for r in summary["by_kind"]) == pytest.approx(1)
    assert "by implementation" in printed and f"written {out}" in printed


@pytest.mark.slow
def test_a_step_without_onednn_is_an_error_naming_the_switch(tiny_params_file, monkeypatch, capsys):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert onednn.main(["--params", str(tiny_params_file), "--steps", "1"]) == 1
    assert "TF_ENABLE_ONEDNN_OPTS" in capsys.readouterr().err


def test_a_recipe_outside_the_params_is_a_usage_error(tiny_params_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        onednn.main(["--params", str(tiny_params_file), "--recipe", "nosuch"])
    assert exit_info.value.code == 2 and "--recipe nosuch" in capsys.readouterr().err
