"""The two audio demos: generated data, metrics on hand-made cases, models, training steps, streaming, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from videollm.demos import WEIGHTS_DIR
from videollm.demos.dance import data as dance_data
from videollm.demos.dance.metrics import beat_f_measure, measurable_beats, motion_beats, step_accuracy
from videollm.demos.dance.model import DanceConfig, DanceNet
from videollm.demos.dance.train import evaluate_dance, fixed_period_dance, train_dance
from videollm.demos.speech import StreamingRecogniser
from videollm.demos.speech import data as speech_data
from videollm.demos.speech.model import SpeechConfig, SpeechNet, lmu_matrices
from videollm.demos.speech.train import WordDetector, detect, score, train_speech

torch.set_num_threads(1)
HAS_ESPEAK = shutil.which("espeak-ng") is not None


# ----------------------------------------------------------------------------------------------- dance metrics

def test_beat_f_measure_known_answers() -> None:
    r = beat_f_measure(np.array([1.0, 2.05, 3.2]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert r["matches"] == 2
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(0.5)
    assert r["f"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # Two estimates near one reference beat: only one of them may match it.
    r = beat_f_measure(np.array([1.0, 1.01]), np.array([1.0]))
    assert (r["precision"], r["recall"]) == (0.5, 1.0)
    assert beat_f_measure(np.array([]), np.array([1.0]))["f"] == 0.0
    assert beat_f_measure(np.array([1.071]), np.array([1.0]))["f"] == 0.0  # just outside 70 ms


def test_motion_beats_of_hand_made_motion() -> None:
    # A pelvis moving back and forth between two key poses, stopping exactly at 0.5, 1.0, ..., 4.5 s;
    # the clip is cut at 4 s, so the stops inside it are 0.5 .. 3.5.
    times = np.arange(1, 10) * 0.5
    keys = np.zeros((9, 11))
    keys[::2, 0] = 0.3
    poses = dance_data.forward_kinematics(dance_data.dance_params(keys, times, 4 * dance_data.FPS))
    found = motion_beats(poses)
    assert len(found) == 7
    np.testing.assert_allclose(found, times[:7], atol=0.5 / dance_data.FPS + 1e-9)
    assert len(motion_beats(np.zeros((50, 15, 2)))) == 0  # a body that never moves has no beats


def test_reference_dances_land_on_the_music_beats() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        song = dance_data.make_song(rng, 8.0, use_samples=False, heldout=True)
        assert song.tempo in dance_data.HELDOUT_TEMPOS
        beats = measurable_beats(song.beats, len(song.poses))
        assert len(song.beats) - len(beats) <= 1
        assert beat_f_measure(motion_beats(song.poses), beats)["f"] == 1.0
        assert step_accuracy(song.poses, song.beats, song.styles) == 1.0
        assert song.poses.shape == (-(-len(song.audio) // dance_data.HOP), 15, 2)


def test_training_tempos_avoid_heldout_and_seed_fixes_song() -> None:
    a = dance_data.make_song(np.random.default_rng(5), 3.0, use_samples=False)
    b = dance_data.make_song(np.random.default_rng(5), 3.0, use_samples=False)
    np.testing.assert_array_equal(a.audio, b.audio)
    tempos = [dance_data.make_song(np.random.default_rng(s), 1.0, use_samples=False).tempo for s in range(30)]
    assert min(abs(t - h) for t in tempos for h in dance_data.HELDOUT_TEMPOS) >= 3.0


def test_fixed_period_baseline_is_perfect_only_at_its_own_tempo() -> None:
    n = 10 * dance_data.FPS
    beats = 0.5 * (1 + np.arange(19))
    poses = fixed_period_dance(np.zeros(19, int), n)
    assert beat_f_measure(motion_beats(poses), beats)["f"] == 1.0
    off_tempo = 0.3 + (60 / 92) * np.arange(14)
    assert beat_f_measure(motion_beats(poses), off_tempo)["f"] < 0.5


# ------------------------------------------------------------------------------------------------ dance model

SMALL_DANCE = DanceConfig(conv_channels=8, conv_layers=2, hidden=16, enc_layers=1)


def test_dance_net_shapes_and_save_load(tmp_path) -> None:
    model = DanceNet(SMALL_DANCE).eval()
    feats = torch.randn(2, 30, dance_data.N_BANDS)
    poses, beats = model(feats)
    assert poses.shape == (2, 30, 15, 2) and beats.shape == (2, 30)
    model.save(tmp_path / "d.safetensors")
    again = DanceNet.load(tmp_path / "d.safetensors")
    torch.testing.assert_close(again.generate(feats), model.generate(feats))


def test_dance_training_steps_reduce_loss() -> None:
    lines: list[str] = []
    train_dance(seed=0, steps=25, batch=4, n_songs=8, seconds=2.0, config=SMALL_DANCE, lr=5e-3, log=lines.append)
    first, last = (float(line.split()[3]) for line in (lines[0], lines[-1]))
    assert last < 0.7 * first


def test_evaluate_dance_reports_metrics_for_a_model() -> None:
    data = dance_data.make_dataset(2, 3.0, seed=9, heldout=True, use_samples=False)
    out = evaluate_dance(DanceNet(SMALL_DANCE).eval(), data)
    assert out["n_songs"] == 2 and 0.0 <= out["beat_f"] <= 1.0 and out["joint_error"] > 0


# ----------------------------------------------------------------------------------------------- speech pieces

def test_lmu_memory_of_a_constant_is_the_first_legendre_coefficient() -> None:
    # The LMU memory holds Legendre coefficients of the last theta steps; a constant 1 has coefficients (1, 0, ...).
    a, b = lmu_matrices(6, theta=20.0)
    m = torch.zeros(6, dtype=torch.float64)
    for _ in range(400):
        m = a @ m + b
    torch.testing.assert_close(m, torch.eye(6, dtype=torch.float64)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["lmu", "cnn"])
def test_speech_net_is_causal(kind: str) -> None:
    model = SpeechNet(SpeechConfig(kind=kind, hidden=16, channels=4, orders=(4,), thetas=(10.0,))).eval()
    x = torch.randn(1, 40, model.config.d_in)
    y = x.clone()
    y[:, 25:] += 3.0
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :25], model(y)[:, :25])
        assert not torch.allclose(model(x)[:, 25:], model(y)[:, 25:])


def test_lmu_step_matches_parallel_forward() -> None:
    model = SpeechNet(SpeechConfig(hidden=16, channels=4, orders=(6, 4), thetas=(12.0, 6.0))).eval()
    x = torch.randn(2, 33, model.config.d_in)
    state = model.init_state(2)
    steps = []
    with torch.no_grad():
        for t in range(33):
            out, state = model.step(x[:, t], state)
            steps.append(out)
        torch.testing.assert_close(torch.stack(steps, 1), model(x), atol=1e-5, rtol=1e-4)
    assert [m.shape for m in state.memories] == [(2, 4, 6), (2, 4, 4)]  # constant-size state


def test_streaming_recogniser_equals_offline_features() -> None:
    model = SpeechNet(SpeechConfig(hidden=16, channels=4, orders=(6,), thetas=(12.0,))).eval()
    audio = np.random.default_rng(0).standard_normal(16000 + 777).astype(np.float32) * 0.1
    with torch.no_grad():
        offline = torch.softmax(model(torch.from_numpy(speech_data.features(audio))[None]), -1)[0].numpy()
    rec = StreamingRecogniser(model)
    seen: list[np.ndarray] = []
    rec.detector.update = lambda p: seen.append(p)  # record posteriors instead of detecting
    for start in range(0, len(audio), 999):
        rec.push(audio[start: start + 999])
    rec.flush()
    np.testing.assert_allclose(np.stack(seen), offline, atol=1e-5)


def test_detect_known_case_and_streaming_detector_agree() -> None:
    probs = np.full((40, speech_data.N_CLASSES), 0.01)
    probs[:, 0] = 0.8
    probs[10:16, 3], probs[10:16, 0] = 0.9, 0.0  # word class 3 on steps 10..15
    probs[30:34, 7], probs[30:34, 0] = 0.95, 0.0
    steps, classes = detect(probs)
    assert classes.tolist() == [3, 7]
    assert steps.tolist() == [11, 31]  # 3-step causal mean passes 0.5 on the second step
    det = WordDetector()
    stream = [(t, c) for t, p in enumerate(probs) if (c := det.update(p)) is not None]
    assert stream == list(zip(steps.tolist(), classes.tolist()))


def test_score_known_case() -> None:
    stream = speech_data.Stream(np.zeros(10), np.array([1, 2, 3]), np.array([0.5, 2.0, 4.0]),
                                np.array([1.0, 2.5, 4.5]), 10.0)
    # word 1 right (latency 0.1), word 2 wrong then right (first counts: wrong; second is an insertion),
    # word 3 missed, one detection before any word (insertion).
    r = score(stream, np.array([0.2, 1.1, 2.3, 2.6]), np.array([5, 1, 4, 2]))
    assert (r["words"], r["correct"], r["insertions"]) == (3, 1, 2)
    assert r["latencies"] == pytest.approx([0.1])


def test_split_words_on_tone_bursts() -> None:
    sr = speech_data.SAMPLE_RATE
    t = np.arange(int(0.2 * sr)) / sr
    burst = 0.5 * np.sin(2 * np.pi * 300 * t)
    gap = np.zeros(int(0.3 * sr))
    clips = speech_data.split_words(np.concatenate([gap, burst, gap, burst, gap, burst, gap]))
    assert len(clips) == 3
    assert all(abs(len(c) / sr - 0.22) < 0.02 for c in clips)


def _tone_clips() -> list[speech_data.Clip]:
    # Stand-in "words" without espeak-ng: each class is a distinct pitch.
    sr = speech_data.SAMPLE_RATE
    t = np.arange(int(0.3 * sr)) / sr
    return [speech_data.Clip((0.5 * np.sin(2 * np.pi * (200 + 60 * c) * t)).astype(np.float32), c, "tone")
            for c in range(1, 5) for _ in range(2)]


@pytest.mark.parametrize("kind", ["lmu", "cnn"])
def test_speech_training_steps_reduce_loss(kind: str) -> None:
    lines: list[str] = []
    train_speech(kind=kind, seed=0, steps=30, batch=4, words_per_stream=2, clips=_tone_clips(), lr=1e-2,
                 log=lines.append)
    first, last = (float(line.split()[4]) for line in (lines[0], lines[-1]))
    assert last < 0.7 * first


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed")
def test_espeak_take_gives_every_word_once() -> None:
    clips = speech_data.synthesise_clips(1, seed=4, heldout=True)
    assert sorted(c.label for c in clips) == list(range(1, 21))
    assert all(c.voice in speech_data.voices(True) for c in clips)
    assert not set(speech_data.voices(True)) & set(speech_data.voices(False))


# ------------------------------------------------------------------------------------------------------- CLI

def test_cli_dance_writes_mp4_with_audio(tmp_path) -> None:
    import av

    from videollm.cli import main

    weights = tmp_path / "dance.safetensors"
    DanceNet(SMALL_DANCE).save(weights)
    wav, mp4 = tmp_path / "song.wav", tmp_path / "dance.mp4"
    assert main(["demo", "sample", "dance", "--out", str(wav), "--seconds", "2", "--tempo", "120"]) == 0
    assert json.loads(wav.with_suffix(".json").read_text())["tempo"] == 120.0
    assert main(["demo", "dance", str(wav), "--out", str(mp4), "--weights", str(weights), "--size", "64"]) == 0
    with av.open(str(mp4)) as c:
        kinds = sorted(s.type for s in c.streams)
        frames = sum(1 for _ in c.decode(video=0))
    assert kinds == ["audio", "video"] and frames == 2 * dance_data.FPS


def test_cli_speech_prints_json_lines(tmp_path, capsys) -> None:
    from videollm.cli import main
    from videollm.demos.audio import write_wav

    weights = tmp_path / "speech.safetensors"
    model = SpeechNet(SpeechConfig(hidden=8, channels=2, orders=(4,), thetas=(8.0,)))
    with torch.no_grad():
        model.head.bias[:] = 0.0
        model.head.bias[5] = 20.0  # always "four": one detection at the first step the mean passes 0.5
    model.save(weights)
    wav = tmp_path / "a.wav"
    write_wav(wav, np.zeros(8000, np.float32), speech_data.SAMPLE_RATE)
    assert main(["demo", "speech", str(wav), "--weights", str(weights)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"word": "four", "time": round(float(speech_data.step_end_times(1)[0]), 3)}]


def test_cli_missing_audio_is_a_one_line_error(tmp_path, capsys) -> None:
    from videollm.cli import main

    assert main(["demo", "speech", str(tmp_path / "nope.wav")]) == 2
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- shipped weights

@pytest.mark.skipif(not (HAS_ESPEAK and (WEIGHTS_DIR / "speech_lmu.safetensors").is_file()),
                    reason="needs espeak-ng and data/demos/speech_lmu.safetensors")
def test_shipped_recogniser_streams_held_out_voice_words() -> None:
    from videollm.demos.speech import recognise_stream

    clips = speech_data.synthesise_clips(2, seed=1, heldout=True)
    stream = speech_data.make_stream(clips, np.random.default_rng(1), 6, 20.0)
    found = list(recognise_stream(stream.audio, chunk_seconds=0.05))
    times = np.array([t for _, t in found])
    classes = np.array([speech_data.WORDS.index(w) + 1 for w, _ in found])
    assert score(stream, times, classes)["correct"] >= 4


@pytest.mark.skipif(not (WEIGHTS_DIR / "dance.safetensors").is_file(), reason="needs data/demos/dance.safetensors")
def test_shipped_dancer_follows_a_held_out_tempo(tmp_path) -> None:
    from videollm.demos.audio import write_wav
    from videollm.demos.dance import dance_from_audio

    song = dance_data.make_song(np.random.default_rng(3), 8.0, tempo=111.0, use_samples=False)
    write_wav(tmp_path / "song.wav", song.audio, dance_data.SAMPLE_RATE)
    poses, fps = dance_from_audio(tmp_path / "song.wav")
    assert poses.shape == song.poses.shape and fps == dance_data.FPS
    beats = measurable_beats(song.beats, len(poses))
    assert beat_f_measure(motion_beats(poses), beats)["f"] >= 0.5
