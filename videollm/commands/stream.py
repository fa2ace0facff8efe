"""``videollm stream``: live scene captions from a file, webcam or network stream."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from videollm.cli import add_command
from videollm.commands import common
from videollm.errors import UsageError
from videollm.prompts import CAPTION

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # both end a stream cleanly; a second one quits at once


def register(sub) -> None:
    p = add_command(sub, "stream", stream)
    p.add_argument("source", help="video file, webcam index (0, 1, ...) or rtsp/rtmp/http(s) URL")
    p.add_argument("--realtime", action="store_true", help="play a file at its own pace (live sources always do)")
    p.add_argument("--save-memory", metavar="FILE",
                   help="save the memory when the stream ends or on Ctrl-C (convention: NAME.memory.safetensors)")
    # The default lives in videollm.memory (DEFAULT_LAG); importing it here would load torch for every --help.
    p.add_argument("--lag", type=int, default=None,
                   help="sampled frames to wait before confirming a cut (default: videollm.memory.DEFAULT_LAG, 4; "
                        "more is steadier, fewer is faster)")
    p.add_argument("--prompt", default=CAPTION, help=f"caption instruction (default {CAPTION!r})")
    p.add_argument("--max-new-tokens", type=int, default=32, help="caption length bound in tokens (default 32)")
    common.add_signal_args(p)
    common.add_model_args(p)


def stream(args: argparse.Namespace) -> int:
    """Caption a stream scene by scene, as it plays.

    Each frame is decoded and encoded once; when the online SceneTiling confirms a cut, the finished scene goes
    through the memory bridge and its caption is printed at once as a JSON line
    {"start", "end", "caption", "latency"} (seconds; latency counts from the cut being confirmed to the caption).
    With the shipped model each line also has "recognised" and "novelty": a scene the model does not recognise
    (anything but its synthetic shapes world) has "caption": null and "recognised": false.
    From a file with sound, each scene's spoken words are transcribed as it closes and printed as "speech" (on when
    faster-whisper and the Whisper weights are installed; --no-speech turns it off); --text reads each scene's
    on-screen text ("text") from the file. Neither applies to webcams and network streams.
    Per-frame work stays flat however long the stream runs; memory grows only by what each scene leaves for
    questions and --save-memory (about 0.12 MB a scene with the shipped model).

    Ctrl-C (or SIGTERM) ends cleanly: no new frame is read, the open scene is captioned, the memory is saved if
    --save-memory was given, and the exit code is 0. A second Ctrl-C quits at once without saving.
    """
    from videollm.batch.captioner import scene_row
    from videollm.batch.files import check_writable
    from videollm.captioning import stream_captions

    if args.lag is not None and args.lag < 0:
        raise UsageError(f"--lag must be >= 0, got {args.lag}")
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.save_memory:
        check_writable(Path(args.save_memory).resolve().parent)  # told now, not when the stream ends
    from videollm import ocr, speech

    is_file = Path(str(args.source)).is_file()
    if not is_file and (args.speech or args.text):
        raise UsageError("--speech and --text read a video file's sound track and frames; "
                         f"{args.source} is a live source")
    hearing = is_file and speech.enabled(args.speech) and speech.has_audio(args.source)
    reading = is_file and ocr.enabled(args.text)
    model = common.load_model(args)
    session = stream_captions(model, args.source, realtime=args.realtime, prompt=args.prompt, lag=args.lag,
                              max_new_tokens=args.max_new_tokens)

    def on_interrupt(signum, frame) -> None:
        if session.stopping:
            raise KeyboardInterrupt
        session.stop()
        print("videollm: stopping after the current scene (Ctrl-C again to quit now)", file=sys.stderr, flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    # SIGTERM (a service manager stopping it) ends the stream as the first Ctrl-C does: memory saved, exit 0.
    previous = [signal.signal(sig, on_interrupt) for sig in STOP_SIGNALS] if in_main else None
    print(f"videollm: streaming {args.source} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    listener = speech.SceneListener(args.source) if hearing else None
    reader = ocr.SceneReader(args.source) if reading else None
    texts: list[str] = []
    try:
        for scene in session:
            row = {**scene_row(scene), "latency": round(scene.latency, 3)}
            if listener is not None:
                row["speech"] = speech.text_of(listener.scene(scene.start, scene.end))
            if reader is not None:
                seg = session.state.segments[scene.index]
                texts.append(reader.text(seg.start_frame, seg.end_frame))
                row["text"] = texts[-1]
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        if in_main:
            for sig, handler in zip(STOP_SIGNALS, previous, strict=True):
                signal.signal(sig, handler)
        for source in (listener, reader):
            if source is not None:
                source.close()
    if listener is not None:
        speech.attach(session.state, listener.words)
    if reader is not None:
        ocr.attach(session.state, texts)
    if args.save_memory:
        session.save_memory(args.save_memory)
        print(f"videollm: memory of {len(session.captions)} scenes saved to {args.save_memory}", file=sys.stderr)
    return 0
