"""The reference processor's decisions, without ffmpeg: the contract it shares with the pipeline, its settings,
validation of hostile probe results, the ladder plan (never upscaled, even sizes), the one-decode command, the
master playlist and the manifest's schema. tests/test_processor_media.py runs the same code on real video."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from generator.functions.video_jobs import contract as pipeline_contract
from processor import contract, manifest, media, pipeline, settings
from processor.settings import Rung

ROOT = Path(__file__).resolve().parent.parent
LIMITS = settings.DEFAULT_LIMITS


def test_the_copied_contract_equals_the_pipelines():
    """The processor is its own image and cannot import the generator: its copies must not drift."""
    shared = [n for n in ("SOURCES_PREFIX", "OUTPUTS_PREFIX", "MANIFEST_NAME", "MANIFEST_SCHEMA_VERSION",
                          "PROGRESS_KEY_PREFIX", "PROGRESS_TTL_SECONDS") if hasattr(pipeline_contract, n)]
    assert {"SOURCES_PREFIX", "OUTPUTS_PREFIX", "PROGRESS_KEY_PREFIX", "PROGRESS_TTL_SECONDS"} <= set(shared)
    for name in shared:
        assert getattr(contract, name) == getattr(pipeline_contract, name), name
    for video_id, attempt in (("v1", 1), ("a_b-C", 12)):
        assert contract.source_key(video_id) == pipeline_contract.source_key(video_id)
        assert contract.outputs_prefix(video_id, attempt) == pipeline_contract.outputs_prefix(video_id, attempt)
        assert contract.progress_key(video_id, attempt) == pipeline_contract.progress_key(video_id, attempt)


def test_the_processor_does_not_import_the_generator():
    """It ships in its own image, which has no generator package."""
    for path in (ROOT / "processor").glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if re.match(r"\s*(import|from)\s+generator\b", line)]
        assert not imports, (path.name, imports)


@pytest.mark.parametrize("env", sorted(settings.LADDERS))
def test_every_environment_has_a_ladder_of_at_least_two_rungs(env):
    config = settings.from_environment({"ENVIRONMENT": env})
    assert len(config.ladder) >= settings.MIN_RUNGS
    assert [r.height for r in config.ladder] == sorted((r.height for r in config.ladder), reverse=True)


def test_ladder_override_is_parsed_and_bad_ones_name_the_variable():
    text = json.dumps([{"name": "low", "height": 180, "videoBitrate": 300000, "audioBitrate": 64000},
                       {"name": "high", "height": 360, "videoBitrate": 800000, "audioBitrate": 96000}])
    assert [r.name for r in settings.from_environment({"LADDER": text}).ladder] == ["high", "low"]
    for bad in ("not json", "[]", json.dumps([{"name": "a", "height": 180, "videoBitrate": 1, "audioBitrate": 1}] * 2),
                json.dumps([{"name": "../x", "height": 180, "videoBitrate": 300000, "audioBitrate": 64000},
                            {"name": "b", "height": 90, "videoBitrate": 300000, "audioBitrate": 64000}])):
        with pytest.raises(settings.SettingsError, match="LADDER"):
            settings.from_environment({"LADDER": bad})
    with pytest.raises(settings.SettingsError, match="MAX_DURATION_SECONDS"):
        settings.from_environment({"MAX_DURATION_SECONDS": "ten"})
    assert settings.from_environment({"ENVIRONMENT": "prod", "MAX_DURATION_SECONDS": "60"}) \
        .limits.max_duration_seconds == 60


def probed(**video) -> dict:
    stream = {"codec_type": "video", "codec_name": "h264", "width": 1280, "height": 720, "avg_frame_rate": "30/1",
              "r_frame_rate": "30/1", "duration": "10.0", "pix_fmt": "yuv420p", **video}
    return {"streams": [stream, {"codec_type": "audio", "codec_name": "aac"}], "format": {"duration": "10.0"}}


@pytest.mark.parametrize(("case", "reason"), [
    ({"streams": [{"codec_type": "audio", "codec_name": "aac"}], "format": {"duration": "3"}}, "no video stream"),
    ({"streams": [], "format": {}}, "no video stream"),
    (probed(width=1, height=1), "1x1 pixels: at least 16"),
    (probed(width=16384, height=16384), "16384x16384 pixels: at most 4096"),
    (probed(codec_name="png"), "codec png is not accepted"),
    (probed(avg_frame_rate="0/0", r_frame_rate="0/0"), "frame rate cannot be determined"),
    (probed(avg_frame_rate="240/1"), "240 frames per second"),
    (probed(duration="100000"), "lasts 100000 s: at most 3600"),
    (probed(duration="0.1"), "at least 0.5 s"),
])
def test_hostile_probe_results_are_invalid_media_with_an_actionable_reason(case, reason):
    with pytest.raises(media.InvalidMedia, match=re.escape(reason)):
        media.validate(case, LIMITS)


def test_validation_swaps_the_sides_of_a_rotated_source_and_ignores_cover_art():
    rotated = probed(width=1920, height=1080, side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}])
    info = media.validate(rotated, LIMITS)
    assert (info.width, info.height, info.rotation) == (1080, 1920, 270)
    cover = {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
             "disposition": {"attached_pic": 1}}
    with_cover = probed()
    with_cover["streams"].insert(0, cover)
    assert media.validate(with_cover, LIMITS).codec == "h264"


def test_a_file_whose_data_ends_early_is_truncated():
    info = media.validate(probed(), LIMITS)
    media.check_complete(info, 9.9)
    with pytest.raises(media.InvalidMedia, match=re.escape("stops at 4.0 s of the 10.0 s")):
        media.check_complete(info, 4.0)


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (641, 361), (1080, 1920), (720, 720), (3840, 1600),
                                               (200, 120), (17, 4000)])
def test_rungs_are_never_upscaled_and_always_even(width, height):
    rungs = media.plan_rungs(settings.PROD_LADDER, width, height)
    assert rungs, "every valid source gets a rendition"
    for planned in rungs:
        assert planned.width % 2 == 0 and planned.height % 2 == 0
        assert planned.width <= width and planned.height <= height
        assert abs(planned.width / planned.height - width / height) < 0.1 * width / height + 2 / planned.height
    assert len({(p.width, p.height) for p in rungs}) == len(rungs), "no two rungs of the same size"
    fitting = [r for r in settings.PROD_LADDER if r.height <= min(width, height)]
    assert len(rungs) == max(1, len(fitting))


def test_a_portrait_source_applies_the_rung_to_its_short_side():
    assert [(p.width, p.height) for p in media.plan_rungs(settings.DEV_LADDER, 1080, 1920)] == [(720, 1280),
                                                                                                  (360, 640)]


def info(**overrides) -> media.SourceInfo:
    return media.SourceInfo(**{"width": 1280, "height": 720, "rotation": 0, "duration": 10.0,
                               "frame_rate": Fraction(30), "codec": "h264", "pix_fmt": "yuv420p",
                               "has_audio": True, **overrides})


def test_the_ladder_is_one_ffmpeg_process_with_one_decode_and_aligned_keyframes(tmp_path):
    config = settings.from_environment({"ENVIRONMENT": "prod"})
    rungs = media.plan_rungs(config.ladder, 1280, 720)
    argv = media.encode_command("ffmpeg", tmp_path / "source", tmp_path / "out", info(), rungs, config)
    assert argv.count("-i") == 1, "one input: the source is decoded once"
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.count("[0:v]") == 1 and f"split={len(rungs) + 2}" in graph
    assert "format=yuv420p" in graph.split("split")[0], "8-bit 4:2:0 before the split: 10-bit sources too"
    assert graph.startswith("[0:v]fps=30/1,"), "a variable-rate source becomes constant-rate"
    assert argv.count("libx264") == len(rungs) == argv.count("hls")
    assert argv.count("expr:gte(t,n_forced*2)") == len(rungs)
    assert all(argv[i + 1] == "0" for i, a in enumerate(argv) if a == "-sc_threshold")
    assert argv.count("+cgop") == len(rungs)


@pytest.mark.parametrize(("rate", "expected"), [(Fraction(30000, 1001), Fraction(30000, 1001)),
                                                (Fraction(120), Fraction(60)), (Fraction(100), Fraction(50)),
                                                (Fraction(24), Fraction(24))])
def test_output_frame_rate_is_at_most_sixty(rate, expected):
    assert media.output_frame_rate(rate) == expected


def test_master_playlist_names_bandwidth_resolution_and_codecs_for_every_rung():
    rungs = media.plan_rungs(settings.PROD_LADDER, 1280, 720)
    outputs = [media.RungOutput(p, "avc1.64001f,mp4a.40.2", 3_000_000 // (i + 1), 2_000_000 // (i + 1))
               for i, p in enumerate(rungs)]
    text = media.master_playlist(outputs, Fraction(30))
    stream_infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == len(rungs) == 3
    for line, planned in zip(stream_infs, rungs, strict=True):
        assert "BANDWIDTH=" in line and f"RESOLUTION={planned.width}x{planned.height}" in line
        assert 'CODECS="avc1.64001f,mp4a.40.2"' in line
    assert text.splitlines()[0] == "#EXTM3U"


def test_avc_codec_reads_profile_constraints_and_level():
    assert media.avc_codec(b"....avcC\x01\x64\x00\x1f\xff") == "avc1.64001f"


def test_media_segments_reads_durations_and_uris():
    playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\nseg_00000.m4s\n#EXTINF:1.5,\nseg_00001.m4s\n"
    assert media.media_segments(playlist) == [(2.0, "seg_00000.m4s"), (1.5, "seg_00001.m4s")]


def a_manifest() -> dict:
    sha = "0" * 64
    return {"schemaVersion": 1, "videoId": "v1", "attempt": 1,
            "source": {"bucket": "media", "key": "sources/v1", "versionId": "x", "sha256": sha},
            "durationSeconds": 3.0,
            "renditions": [{"name": "360p", "width": 640, "height": 360, "bitrate": 1, "peakBitrate": 2,
                            "codecs": "avc1.64001e,mp4a.40.2", "playlist": "hls/360p/index.m3u8", "bytes": 9,
                            "sha256": sha}],
            "download": {"key": "download.mp4", "bytes": 5, "sha256": sha}, "poster": {"key": "poster.jpg"},
            "thumbnails": [{"key": "thumbnails/0001.jpg"}], "hls": {"master": "hls/master.m3u8"},
            "files": [{"key": "download.mp4", "bytes": 5, "sha256": sha}], "tools": {"ffmpeg": "6.0"},
            "createdAt": "2026-12-04T10:00:00Z"}


def test_manifest_schema_accepts_the_shape_and_refuses_drift():
    assert manifest.validation_errors(a_manifest()) == []
    for path, value, expected in ((("schemaVersion",), 2, "schemaVersion"),
                                  (("renditions", 0, "width"), 641, "renditions/0/width"),
                                  (("download", "key"), "/abs/key", "download/key"),
                                  (("poster", "key"), "../other/poster.jpg", "poster/key"),
                                  (("source", "sha256"), "ABC", "source/sha256")):
        document = a_manifest()
        target = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        errors = manifest.validation_errors(document)
        assert errors and errors[0].startswith(expected), (path, errors)
    extra = {**a_manifest(), "unexpected": 1}
    assert manifest.validation_errors(extra)


def contract_environment(**overrides) -> dict:
    return {"VIDEO_ID": "v1", "ATTEMPT": "2", "SOURCE_BUCKET": "media", "SOURCE_KEY": "sources/v1",
            "SOURCE_VERSION_ID": "ver", "SOURCE_SHA256": "A" * 64, "OUTPUTS_BUCKET": "media",
            "OUTPUTS_PREFIX": "outputs/v1/2/", **overrides}


def test_the_job_comes_from_the_container_contract_only():
    job = pipeline.job_from_environment(contract_environment())
    assert job.attempt == 2 and job.source_sha256 == "a" * 64
    with pytest.raises(pipeline.ContractError, match="SOURCE_BUCKET, SOURCE_KEY"):
        pipeline.job_from_environment(contract_environment(SOURCE_BUCKET="", SOURCE_KEY=""))
    # A video submitted without an upload (POST /videos): the current version, the checksum from its metadata.
    placed = pipeline.job_from_environment(contract_environment(SOURCE_VERSION_ID="", SOURCE_SHA256=""))
    assert (placed.source_version_id, placed.source_sha256) == ("", "")
    with pytest.raises(pipeline.ContractError, match="OUTPUTS_PREFIX"):
        pipeline.job_from_environment(contract_environment(OUTPUTS_PREFIX="outputs/v1/1/"))
    with pytest.raises(pipeline.ContractError, match="ATTEMPT"):
        pipeline.job_from_environment(contract_environment(ATTEMPT="two"))


def test_rung_names_are_safe_directory_names():
    for rung in (*settings.PROD_LADDER, *settings.DEV_LADDER):
        assert isinstance(rung, Rung) and set(rung.name) <= settings.RUNG_NAME_CHARS


def test_a_source_without_version_or_declared_checksum_is_read_current_and_checked_against_its_metadata(tmp_path):
    """POST /videos names no version and no checksum: the processor reads the current version and checks the
    `sha256` metadata an upload leaves (docs/processor.md); bytes that differ from it are invalid media. What it
    read (version, checksum) is what its manifest names: an empty version there fails the manifest's schema."""
    import hashlib

    import boto3
    from moto import mock_aws

    from processor import storage
    from processor.media import InvalidMedia

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="media")
        s3.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Enabled"})
        body = b"not really a video"
        put = s3.put_object(Bucket="media", Key="sources/v1", Body=body,
                            Metadata={"sha256": hashlib.sha256(body).hexdigest()})
        fetched = storage.fetch_source(s3, "media", "sources/v1", "", "", tmp_path / "a")
        assert fetched == (len(body), put["VersionId"], hashlib.sha256(body).hexdigest()), "what the manifest names"
        s3.put_object(Bucket="media", Key="sources/v1", Body=body, Metadata={"sha256": "0" * 64})
        with pytest.raises(InvalidMedia, match="SHA-256"):
            storage.fetch_source(s3, "media", "sources/v1", "", "", tmp_path / "b")
        s3.put_object(Bucket="media", Key="sources/v1", Body=body)  # placed by other means: nothing to check
        assert storage.fetch_source(s3, "media", "sources/v1", "", "", tmp_path / "c").size == len(body)
