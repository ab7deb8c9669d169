import json

import pytest

from bench import serving as serving_bench


@pytest.mark.slow
def test_serving_bench_prints_one_json_line_per_case(capsys):
    assert serving_bench.main(["--requests", "5", "--concurrency", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    cases = {(r["signature"], r["batch"], r["transport"]) for r in rows}
    assert cases == {(s, b, t) for s in ("embed_text", "embed_image") for b in (1, 8)
                     for t in ("direct", "grpc", "rest")}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["throughput_rps"] > 0 for r in rows)
    assert all(r["overhead_p50"] == 1.0 for r in rows if r["transport"] == "direct")
