"""Words and styles of the app: the header, the About panel and the CSS (kept apart from the tabs' wiring)."""

from __future__ import annotations

HEADER = """
<div class="vl-header">
  <h1>videollm</h1>
  <p>Long-video understanding with SceneTiling and recurrent memory bridges, running on this machine.
  Upload a video or click an example: scenes are found, captioned one by one, and remembered, so follow-up
  questions cost no re-watching.</p>
</div>
"""

ABOUT = """
### What this is

**videollm** splits a video into scenes with **SceneTiling** (cuts where consecutive frames stop looking alike),
carries a small **recurrent memory** from scene to scene through a memory bridge, and hands that memory to a language
model through a projector. Each frame is decoded and encoded once; the memory of a video can be saved and loaded again,
so questions about an already watched video need no vision compute.

A video with sound is also transcribed (Whisper base, when the server has the speech extra), and with **Read
on-screen text** ticked each scene's middle frame is read (RapidOCR): the scene table shows each scene's words said and
text written beside its caption, questions such as "what is said in the scene with the red star?" or "what is written
in the third scene?" are answered with them, and **Find scenes** finds where words are said or written — as
`videollm caption`, `ask` and `search` do.

### What the embedded model knows — honestly

The model this server runs by default is small and offline: DINOv2 ViT-S/14 sees, SmolLM2-135M-Instruct speaks, and
the bridge and projector between them were trained only on the project's **synthetic video world**: flat, gradient,
noise or photo backgrounds with coloured shapes (circle, square, star, ring, …) that move left, right, up, down,
spin, grow, bounce or stay still, with hard cuts and fades between scenes. It can describe and answer questions about
*that* world. On real footage it will still find scenes (SceneTiling needs no training), but its captions and answers
will be about shapes and colours, not about people, places or actions. Treat its words as a demonstration of the
machinery, not as an assistant.

{model_line}

### Live captions from your camera

In **Live captions → Your camera, live**, your browser sends a frame from your camera four times a second while you
film; the server keeps two a second (the model's rate, timed by their arrival) and captions each scene as soon as
SceneTiling confirms its end — the same streaming path as `videollm stream`, each frame encoded once. Nothing is
recorded except the stream's memory, which you can download. With the shipped model on 2 CPU cores a scene's
caption appears about **5 s after the cut** (median; p90 7.5 s): 2 s for the cut to be confirmed, 2–3 s to caption
it. The segmenter confirms no cut in a stream's first 16 s, so the first scenes arrive together after that. About 4
in 5 captions equal those of the same video's file (the browser's JPEG changes colours slightly). A camera stream
lasts at most **{max_video_seconds:.0f} s**; this server captions {camera_streams} camera stream(s) at a time and
further visitors wait their turn. When the server falls behind, frames are dropped (the status line counts them)
rather than delayed further.

### Full-size checkpoints

The same code loads larger models from a local directory (``config.json`` + ``model.safetensors``, plus the vision
and language models it names):

```
videollm serve --model /path/to/checkpoint            # a trained checkpoint directory
videollm serve --model videollamb-7b --device cuda     # the published-size preset (needs its weights locally)
```

### Privacy and limits

Everything runs on this machine: no analytics, no requests to other hosts, uploads stay in the app's own temporary
folder. Uploads are limited to **{max_upload_mb} MB** and **{max_video_seconds:.0f} s** of video; requests run
{concurrency} at a time and wait in a queue of {queue_size}. A visitor's files are deleted {keep_minutes:.0f} minutes
after they were made, and their memory when the tab closes (or after {keep_minutes:.0f} idle minutes).
"""

CSS = """
.vl-header h1 {margin: 0 0 .25rem 0; font-size: 1.9rem; letter-spacing: -.02em;}
.vl-header p {margin: 0; opacity: .8; max-width: 60rem;}
.vl-timeline {display: flex; width: 100%; height: 30px; border-radius: 8px; overflow: hidden; gap: 2px;}
.vl-timeline.vl-empty {align-items: center; justify-content: center; opacity: .6; height: 30px;
                       border: 1px dashed #9ca3af;}
.vl-block {display: flex; align-items: center; justify-content: center; color: white; font-size: .8rem;
           font-weight: 600; min-width: 4px; cursor: default;}
.vl-axis {display: flex; justify-content: space-between; font-size: .75rem; opacity: .7; margin-top: 2px;}
.vl-status {min-height: 1.5rem;}
"""
