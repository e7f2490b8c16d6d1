"""``strata serve --s3-part-size``: parts smaller than AWS S3's 5 MiB are refused for AWS (no
``endpoint=``) before anything starts; another S3 server may take them (the tests' rclone)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from strata.server.serve_cmd import serve


def test_a_part_size_below_5_mib_is_refused_for_aws(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--data", str(tmp_path / "d"), "--blob-store",
                                        "s3://bucket/prefix", "--s3-part-size", "1048576"])
    assert result.exit_code == 2
    assert "--s3-part-size" in result.output and "5242880" in result.output
    assert not (tmp_path / "d").exists()


def test_a_part_size_below_the_floor_is_refused() -> None:
    result = CliRunner().invoke(serve, ["--s3-part-size", "1000"])
    assert result.exit_code == 2 and "--s3-part-size" in result.output
