"""Web samples in the loader: golden multi-turn layout, PaliGemma templates, image slots, `<loc>`
tokens after the same resize-with-pad / crop as the image (hand-computed), tokenizer ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.images import encode_image
from vla_data.loader import LoaderConfig, SourceConfig, build_sources, make_loader
from vla_data.sources.web import WebSource
from vla_data.tokenizers.web_text import loc_index

BOS, EOS, NL = 257, 258, 10


def web_config(root, **overrides) -> LoaderConfig:
    base = dict(
        sources=(SourceConfig("web", (str(root),)),), batch_size=2, max_tokens=160, image_size=(224, 224)
    )
    return LoaderConfig(**{**base, **overrides})


def web_samples(root, **overrides):
    sources, _ = build_sources(web_config(root, **overrides))
    return sources[0]


def write_llava(folder, records, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (folder / name).write_bytes(data)
    (folder / "data.json").write_text(json.dumps(records))
    convert(WebSource(str(folder / "data.json")), folder / "out")
    return folder / "out"


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    red = encode_image(np.full((40, 80, 3), (255, 0, 0), np.uint8), "png")
    green = encode_image(np.full((40, 40, 3), (0, 255, 0), np.uint8), "png")
    records = [
        {
            "id": "two-turn",
            "image": "red.png",
            "conversations": [
                {"from": "human", "value": "<image>\nQ1"},
                {"from": "gpt", "value": "A1"},
                {"from": "human", "value": "Q2"},
                {"from": "gpt", "value": "A2"},
            ],
        },
        {"id": "text", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
        {
            "id": "four-images",
            "image": ["red.png", "green.png", "red.png", "green.png"],
            "conversations": [{"from": "human", "value": "n?"}, {"from": "gpt", "value": "4"}],
        },
    ]
    return write_llava(root, records, {"red.png": red, "green.png": green})


def test_golden_two_turn_layout(chat):
    sample = web_samples(chat)[0]
    t = sample["tokens"]
    prefix = [BOS, *b"Q1", NL]
    postfix = [*b"A1", EOS, *b"Q2", NL, *b"A2", EOS]
    assert t.tokens.tolist() == prefix + postfix
    # ar: 0 on the prefix (bidirectional), 1 on every later turn (causal)
    assert t.ar.tolist() == [False] * 4 + [True] * 9
    # loss on assistant turns and their EOS only, never on user turns or the prefix
    assert t.loss.tolist() == [False] * 4 + [True, True, True, False, False, False, True, True, True]
    assert not t.fast.any()
    assert sample["image_masks"] == {
        "base_0_rgb": True,
        "left_wrist_0_rgb": False,
        "right_wrist_0_rgb": False,
    }
    red = sample["images"]["base_0_rgb"]  # 40x80 padded into 224x224: rows 56..167 red
    assert red[0, 112, 112] == 255 and red[:, 10, 112].tolist() == [0, 0, 0]


def test_text_only_and_image_slots(chat):
    samples = web_samples(chat)
    text = samples[1]
    assert not any(text["image_masks"].values()) and not text["images"]["base_0_rgb"].any()
    assert text["tokens"].tokens.tolist() == [BOS, *b"hi", NL, *b"yo", EOS]
    with pytest.raises(
        VlaDataError, match=r"4 images but the model has 3 image slots .*web_extra_images='drop'"
    ):
        samples[2]
    dropped = web_samples(chat, web_extra_images="drop")[2]
    assert all(dropped["image_masks"].values()) and dropped["extra_images_dropped"] == 1
    slots = dropped["images"]  # filled in order: red, green, red
    assert slots["base_0_rgb"][0, 112, 112] == 255 and slots["left_wrist_0_rgb"][1, 112, 112] == 255
    assert slots["right_wrist_0_rgb"][0, 112, 112] == 255
    batch = next(iter(make_loader(web_config(chat, web_extra_images="drop", samples_per_epoch=2, seed=3))))
    assert batch["extra_images_dropped"].dtype.is_floating_point is False and "boxes_dropped" in batch


def test_paligemma_templates_and_custom_ones(tmp_path):
    (tmp_path / "img.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "png"))
    rows = [
        {"image": "img.png", "question": "", "answer": "a dog", "kind": "caption"},
        {"image": "img.png", "question": "what?", "answer": "dog", "kind": "vqa"},
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    convert(WebSource(str(tmp_path / "rows.jsonl"), kind_field="kind"), tmp_path / "out")
    caption, vqa = web_samples(tmp_path / "out")[0], web_samples(tmp_path / "out")[1]
    assert caption["tokens"].tokens.tolist() == [BOS, *b"caption en\n", *b"a dog", EOS]
    assert vqa["tokens"].tokens.tolist() == [BOS, *b"answer en what?\n", *b"dog", EOS]
    custom = web_samples(tmp_path / "out", web_templates={"vqa": "Q: {question}"})[1]
    assert custom["tokens"].tokens.tolist() == [BOS, *b"Q: what?\n", *b"dog", EOS]
    with pytest.raises(VlaDataError, match=r"uses \['task'\]"):
        web_samples(tmp_path / "out", web_templates={"vqa": "{task}"})


def boxes_dataset(tmp_path, fmt="png", size=(200, 400)):
    """A 200x400 (h x w) image, black with white boxes, COCO-annotated."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    boxes = {"cat": [100, 50, 200, 100], "dog": [0, 20, 80, 60], "cup": [50, 160, 100, 30]}  # x, y, w, h
    for x, y, bw, bh in boxes.values():
        image[y : y + bh, x : x + bw] = 255
    (tmp_path / "val2017").mkdir(parents=True)
    (tmp_path / "val2017" / "a.img").write_bytes(encode_image(image, fmt))
    coco = {
        "images": [{"id": 1, "file_name": "a.img", "height": h, "width": w}],
        "annotations": [
            {"id": i, "image_id": 1, "bbox": b, "category_id": i, "iscrowd": 0}
            for i, b in enumerate(boxes.values())
        ],
        "categories": [{"id": i, "name": name} for i, name in enumerate(boxes)],
    }
    (tmp_path / "instances_val2017.json").write_text(json.dumps(coco))
    convert(WebSource(str(tmp_path / "instances_val2017.json")), tmp_path / "out")
    return tmp_path / "out"


def test_loc_tokens_after_pad_match_a_hand_computation(tmp_path):
    sample = web_samples(boxes_dataset(tmp_path))[0]
    # pad: scale 224/400 = 0.56 -> 112x224 content, 56 black rows on top, none on the left.
    # cat: x 100..300, y 50..150 -> x 56..168, y 84..140 -> bins round(v / 224 * 1023)
    cat = [round(84 / 224 * 1023), round(56 / 224 * 1023), round(140 / 224 * 1023), round(168 / 224 * 1023)]
    assert cat == [384, 256, 639, 767]
    # dog: x 0..80, y 20..80 -> x 0..44.8, y 67.2..100.8; cup: x 50..150, y 160..190 -> x 28..84, y 145.6..162.4
    dog = [round(67.2 / 224 * 1023), 0, round(100.8 / 224 * 1023), round(44.8 / 224 * 1023)]
    cup = [
        round(145.6 / 224 * 1023),
        round(28 / 224 * 1023),
        round(162.4 / 224 * 1023),
        round(84 / 224 * 1023),
    ]
    locs = lambda b: "".join(f"<loc{v:04d}>" for v in b)  # noqa: E731
    answer = f"{locs(cat)} cat ; {locs(dog)} dog ; {locs(cup)} cup"
    prompt = "detect cat ; dog ; cup\n"
    assert sample["tokens"].tokens.tolist() == [BOS, *prompt.encode(), *answer.encode(), EOS]
    assert sample["boxes_dropped"] == 0
    assert_boxes_match_pixels(sample, {"cat": cat, "dog": dog, "cup": cup})


def test_loc_tokens_after_crop_drop_boxes_cropped_away(tmp_path):
    sample = web_samples(boxes_dataset(tmp_path), web_resize_mode="crop")[0]
    # crop: scale 224/200 = 1.12 -> 224x448, columns 112..335 kept (left = -112).
    # cat: x 100..300 -> 0..224, y 50..150 -> 56..168; dog: x 0..80 -> -112..-22.4: cropped away;
    # cup: x 50..150 -> -56..56 (clipped to 0..56), y 160..190 -> 179.2..212.8
    cat = [round(56 / 224 * 1023), 0, round(168 / 224 * 1023), 1023]
    cup = [round(179.2 / 224 * 1023), 0, round(212.8 / 224 * 1023), round(56 / 224 * 1023)]
    assert cat == [256, 0, 767, 1023]
    locs = lambda b: "".join(f"<loc{v:04d}>" for v in b)  # noqa: E731
    answer = f"{locs(cat)} cat ; {locs(cup)} cup"
    assert sample["tokens"].tokens.tolist() == [BOS, *b"detect cat ; dog ; cup\n", *answer.encode(), EOS]
    assert sample["boxes_dropped"] == 1
    assert_boxes_match_pixels(sample, {"cat": cat, "cup": cup})


@pytest.mark.parametrize("decode", ["full", "draft"])
def test_loc_tokens_follow_a_resized_jpeg(tmp_path, decode):
    """A 480x960 JPEG, decoded whole or at a DCT scale (draft) before the resize: boxes follow."""
    sample = web_samples(boxes_dataset(tmp_path, "jpeg", (480, 960)), image_decode=decode)[0]
    text = bytes(t for t in sample["tokens"].tokens.tolist() if t < 256).decode()
    answer = text.split("\n", 1)[1]
    found = {}
    for part in answer.split(" ; "):
        locs, label = part.split(" ", 1)
        found[label] = [int(v) for v in locs.replace("<loc", " ").replace(">", "").split()]
    assert_boxes_match_pixels(sample, found, tolerance=2)


def assert_boxes_match_pixels(sample, expected: dict[str, list[int]], tolerance: int = 1):
    """Each box's loc bins agree with where its white rectangle landed in the model image."""
    image = sample["images"]["base_0_rgb"][0] > 128  # [224, 224]
    for label, (y0, x0, y1, x1) in expected.items():
        rows = slice(int(y0 / 1023 * 224) + 2, int(y1 / 1023 * 224) - 2)
        cols = slice(int(x0 / 1023 * 224) + 2, int(x1 / 1023 * 224) - 2)
        assert image[rows, cols].all(), label  # the inside of the box is white
        for edge, bins in (("y0", y0), ("x0", x0), ("y1", y1), ("x1", x1)):
            pixel = bins / 1023 * 224
            if 0 < pixel < 224:  # an edge inside the image sits where white meets black
                line = (
                    image[:, (cols.start + cols.stop) // 2]
                    if edge[0] == "y"
                    else image[(rows.start + rows.stop) // 2]
                )
                change = np.flatnonzero(np.diff(line.astype(int)))
                assert np.abs(change + 1 - pixel).min() <= tolerance * 224 / 1023 + 1, (
                    label,
                    edge,
                    change,
                    pixel,
                )


def test_loc_binning_is_big_vision_round_1023():
    assert [loc_index(v, 224) for v in (0, 0.5 * 224 / 1023, 1.5 * 224 / 1023, 112, 224, 300, -5)] == [
        0,
        0,
        2,
        512,
        1023,
        1023,
        0,
    ]


def test_loc_tokens_are_single_ids_with_a_paligemma_like_tokenizer(tmp_path):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    words = ["<pad>", "<eos>", "<bos>", "detect", "cat", "dog", "cup", ";", "\n"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_tokens([AddedToken(f"<loc{i:04d}>", normalized=False) for i in range(1024)])
    tokenizer.add_tokens([AddedToken("\n", normalized=False)])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    sample = web_samples(boxes_dataset(tmp_path), text_tokenizer=str(tmp_path / "tokenizer.json"))[0]
    ids = sample["tokens"].tokens.tolist()
    loc0 = tokenizer.token_to_id("<loc0000>")
    locs = [i - loc0 for i in ids if loc0 <= i < loc0 + 1024]
    assert locs[:4] == [384, 256, 639, 767] and len(locs) == 12  # 3 boxes x 4 single-id tokens
    vocab = {v: k for k, v in tokenizer.get_vocab(with_added_tokens=True).items()}
    assert [vocab[i] for i in ids[:8]] == ["<bos>", "detect", "cat", ";", "dog", ";", "cup", "\n"]
    assert [vocab[i] for i in ids[8:13]] == ["<loc0384>", "<loc0256>", "<loc0639>", "<loc0767>", "cat"]
    assert ids[-1] == tokenizer.token_to_id("<eos>")


def test_tail_fast_mapping_refuses_the_loc_ids_of_the_text_tokenizer(tmp_path):
    """The FAST range guard sees the <loc> ids of the configured tokenizer.json (issue 12 item 4)."""
    from tokenizers import AddedToken, Tokenizer, models

    from vla_data.tokenizers import FastTokenizer

    words = ["<pad>", "<eos>", "<bos>"] + [f"w{i}" for i in range(600)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tokenizer.add_tokens([AddedToken(f"<loc{i:04d}>", normalized=False) for i in range(1024)])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    chunks = np.random.default_rng(0).uniform(-1, 1, (200, 10, 2))
    FastTokenizer.fit(chunks, vocab_size=300).save_pretrained(tmp_path / "fast")
    data = boxes_dataset(tmp_path / "web")
    config = dict(text_tokenizer=str(tmp_path / "tokenizer.json"), fast_tokenizer=str(tmp_path / "fast"))
    with pytest.raises(VlaDataError, match=r"over \d+ location/segmentation tokens .*set fast_skip >= 1024"):
        make_loader(web_config(data, fast_mapping="tail", fast_skip=128, **config))
    sample = web_samples(data, fast_mapping="tail", fast_skip=1024, **config)[0]  # clear of the <loc> ids
    assert sample["tokens"].tokens[0] == tokenizer.token_to_id("<bos>")
