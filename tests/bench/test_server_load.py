"""The server load benchmark, run small: the server, a crowd of slow and idle clients, the figures."""

from image_completion.bench import server_load


def test_server_load_runs_small_and_prints_the_figures(capsys):
    assert server_load.main(["--seconds", "2", "--slow", "6", "--idle", "6", "--addresses", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].startswith("CPU: ")
        and lines[1] == "load: 6 slow-header clients + 6 idle keep-alive connections from 2 addresses"
    )
    assert lines[3].startswith("well-behaved GET /: ") and " answered 200, median " in lines[3]
    assert lines[4] == "  failures: 0"
