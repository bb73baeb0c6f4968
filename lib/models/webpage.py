"""A static web page that classifies a drawing in the browser with a run's ONNX export.

One self-contained HTML file: the ONNX model inside it (base64), onnxruntime-web (its WebAssembly
build, pinned) from the jsDelivr CDN, a canvas to draw on and a picture picker, and the same
preprocessing as the Python snippets (lib.models.snippets) written in JavaScript: ink light on black,
cropped, scaled to fit (20x20 of 28x28 for digits, by area averaging as Pillow's BOX filter does),
placed by centre of mass (digits) or centred (other grayscale models). Open it from disk or put it on
any static host; nothing is sent anywhere. Offered for one-channel models (the ones a drawing fits).
The browser test (tests/e2e/test_export_webpage.py) runs it in headless Chromium and compares its
answer with the app's.
"""

from __future__ import annotations

import base64
import html
import json
import re

from lib.models.exports import ModelFacts

ORT_WEB_VERSION = "1.31.1"  # onnxruntime-web, the same release line as the onnxruntime the check uses
ORT_WEB_DIST = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
ORT_WEB_SCRIPT = "ort.wasm.min.js"  # the WebAssembly-only build: small, runs everywhere

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ · draw and classify</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 44rem; padding: 0 1rem; color: #222; }
  .row { display: flex; gap: 1.5rem; align-items: flex-start; flex-wrap: wrap; }
  #pad { border: 1px solid #999; border-radius: 6px; touch-action: none; cursor: crosshair; background: #fff; }
  #seen { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #999; background: #000; }
  #answer li { font-size: 1.2rem; margin: 0.2rem 0; }
  .muted { color: #666; font-size: 0.9rem; }
</style>
<script src="__ORT_SCRIPT__"></script>
</head>
<body>
<h1>__TITLE__</h1>
<p>Draw __WHAT__ or choose a picture. The model (exported as ONNX by MNIST Studio) runs in this
browser with onnxruntime-web; nothing leaves your computer.</p>
<div class="row">
  <div>
    <canvas id="pad" width="280" height="280"></canvas><br>
    <button id="clear">Clear</button>
    <input type="file" id="picture" accept="image/png,image/jpeg">
  </div>
  <div>
    <div class="muted">What the model sees (__SIZE__x__SIZE__):</div>
    <canvas id="seen" width="__SIZE__" height="__SIZE__"></canvas>
    <ol id="answer"><li class="muted">Loading the model…</li></ol>
  </div>
</div>
<p class="muted">Preprocessing, as in training: __STEPS__</p>
<script>
"use strict";
const MODEL_BASE64 = "__MODEL__";
const CLASS_NAMES = __CLASS_NAMES__;
const SIZE = __SIZE__;
const BOX = __BOX__;  // the ink's longer side after scaling
const BY_MASS = __BY_MASS__;  // digits: centre of mass at the centre (MNIST); otherwise the ink's box centred
const SCALE = __SCALE__;  // 1 for pixels / 255 (values in [0, 1]); 255 for raw pixel values

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = "__ORT_DIST__";
const modelBytes = Uint8Array.from(atob(MODEL_BASE64), (c) => c.charCodeAt(0));
const session = ort.InferenceSession.create(modelBytes, { executionProviders: ["wasm"] });

function border(values, w, h) {
  const out = [];
  for (let x = 0; x < w; x++) { out.push(values[x], values[(h - 1) * w + x]); }
  for (let y = 1; y < h - 1; y++) { out.push(values[y * w], values[y * w + w - 1]); }
  return out;
}

function median(values) {
  const s = Float32Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// The picture as ink strength in [0, 1]: 0 for the background, whatever its colour.
function inkOf(image) {
  const { width: w, height: h, data } = image;
  const alpha = new Float32Array(w * h), gray = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) {
    alpha[i] = data[4 * i + 3] / 255;
    gray[i] = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
  }
  let seeThrough = false;
  for (const a of alpha) if (a < 1) { seeThrough = true; break; }
  if (seeThrough && median(border(alpha, w, h)) < 0.5) return alpha;  // drawn on a transparent canvas
  const background = median(border(gray, w, h));
  let lo = Infinity, hi = -Infinity;
  for (const v of gray) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const darkInk = background - lo >= hi - background;  // dark ink on light paper, as most drawings
  return gray.map((v) => Math.max(0, Math.min(1, darkInk ? background - v : v - background)));
}

// Area averaging (Pillow's BOX filter) when shrinking; bilinear when enlarging.
function resize(src, sw, sh, dw, dh) {
  const out = new Float32Array(dw * dh);
  const fx = sw / dw, fy = sh / dh;
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      if (fx >= 1 && fy >= 1) {
        const x0 = x * fx, x1 = x0 + fx, y0 = y * fy, y1 = y0 + fy;
        let sum = 0;
        for (let yy = Math.floor(y0); yy < Math.min(Math.ceil(y1), sh); yy++) {
          const wy = Math.min(yy + 1, y1) - Math.max(yy, y0);
          for (let xx = Math.floor(x0); xx < Math.min(Math.ceil(x1), sw); xx++) {
            sum += src[yy * sw + xx] * wy * (Math.min(xx + 1, x1) - Math.max(xx, x0));
          }
        }
        out[y * dw + x] = sum / (fx * fy);
      } else {
        const sx = Math.max(0, Math.min(sw - 1, (x + 0.5) * fx - 0.5)), sy = Math.max(0, Math.min(sh - 1, (y + 0.5) * fy - 0.5));
        const x0 = Math.floor(sx), y0 = Math.floor(sy), x1 = Math.min(x0 + 1, sw - 1), y1 = Math.min(y0 + 1, sh - 1);
        const ax = sx - x0, ay = sy - y0;
        out[y * dw + x] = (src[y0 * sw + x0] * (1 - ax) + src[y0 * sw + x1] * ax) * (1 - ay)
                        + (src[y1 * sw + x0] * (1 - ax) + src[y1 * sw + x1] * ax) * ay;
      }
    }
  }
  return out;
}

// The picture as the model saw its training images, or null when there is no ink.
function preprocess(image) {
  let ink = inkOf(image);
  const w = image.width;
  let peak = 0;
  for (const v of ink) peak = Math.max(peak, v);
  if (peak < 0.1) return null;
  ink = ink.map((v) => Math.max(0, Math.min(1, (v - 0.1 * peak) / (0.9 * peak))));  // grain -> 0, strongest -> 1
  let top = Infinity, bottom = -1, left = Infinity, right = -1;
  ink.forEach((v, i) => {
    if (v > 0) { const y = Math.floor(i / w), x = i % w; top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x); }
  });
  const cw = right - left + 1, ch = bottom - top + 1, crop = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(top + y) * w + left + x];
  const scale = BOX / Math.max(cw, ch);
  const width = Math.max(1, Math.round(cw * scale)), height = Math.max(1, Math.round(ch * scale));
  let small = resize(crop, cw, ch, width, height);
  let most = 0;
  for (const v of small) most = Math.max(most, v);
  small = small.map((v) => Math.max(0, Math.min(1, v)) / Math.min(1, most));
  let rowAt, colAt;
  if (BY_MASS) {
    let total = 0, rows = 0, cols = 0;
    small.forEach((v, i) => { total += v; rows += v * Math.floor(i / width); cols += v * (i % width); });
    rowAt = Math.min(Math.max(Math.round(SIZE / 2 - rows / total), 0), SIZE - height);
    colAt = Math.min(Math.max(Math.round(SIZE / 2 - cols / total), 0), SIZE - width);
  } else {
    rowAt = (SIZE - height) >> 1;
    colAt = (SIZE - width) >> 1;
  }
  const field = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) field[(rowAt + y) * SIZE + colAt + x] = small[y * width + x];
  return field;
}

async function classifyImageData(image) {
  const field = preprocess(image);
  if (field === null) return null;
  const model = await session;
  const input = new ort.Tensor("float32", field.map((v) => v * SCALE), [1, SIZE, SIZE, 1]);
  const output = await model.run({ [model.inputNames[0]]: input });
  return { field, probabilities: Array.from(output[model.outputNames[0]].data) };
}
window.classifyImageData = classifyImageData;  // for tests and the curious

async function show(image) {
  const answer = document.getElementById("answer");
  const result = await classifyImageData(image);
  const seen = document.getElementById("seen").getContext("2d");
  if (result === null) {
    answer.innerHTML = '<li class="muted">No ink yet.</li>';
    seen.clearRect(0, 0, SIZE, SIZE);
    return;
  }
  const pixels = seen.createImageData(SIZE, SIZE);
  result.field.forEach((v, i) => { pixels.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i); });
  seen.putImageData(pixels, 0, 0);
  const order = result.probabilities.map((p, k) => [p, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  answer.replaceChildren(...order.map(([p, k]) => {
    const item = document.createElement("li");
    item.textContent = `${CLASS_NAMES[k]}  ${(100 * p).toFixed(1)}%`;
    return item;
  }));
  document.body.dataset.probabilities = JSON.stringify(result.probabilities);
}

const pad = document.getElementById("pad"), pen = pad.getContext("2d");
function clearPad() { pen.fillStyle = "#fff"; pen.fillRect(0, 0, pad.width, pad.height); }
clearPad();
let drawing = false;
pad.addEventListener("pointerdown", (e) => { drawing = true; pen.beginPath(); pen.moveTo(e.offsetX, e.offsetY); });
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  pen.lineWidth = 18; pen.lineCap = "round"; pen.lineJoin = "round"; pen.strokeStyle = "#000";
  pen.lineTo(e.offsetX, e.offsetY); pen.stroke();
});
window.addEventListener("pointerup", () => {
  if (!drawing) return;
  drawing = false;
  show(pen.getImageData(0, 0, pad.width, pad.height));
});
document.getElementById("clear").addEventListener("click", () => { clearPad(); show(pen.getImageData(0, 0, pad.width, pad.height)); });
document.getElementById("picture").addEventListener("change", async (e) => {
  const bitmap = await createImageBitmap(e.target.files[0]);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  show(context.getImageData(0, 0, bitmap.width, bitmap.height));
});
session.then(() => { document.getElementById("answer").innerHTML = '<li class="muted">Ready: draw.</li>'; document.body.dataset.ready = "1"; },
             (error) => { document.getElementById("answer").textContent = `The model could not be loaded: ${error}`; });
</script>
</body>
</html>
"""


def offered_for(facts: ModelFacts) -> bool:
    """The page takes drawings: one-channel, square models only."""
    height, width, channels = facts.input_shape
    return channels == 1 and height == width


def page_for(facts: ModelFacts, onnx_bytes: bytes, *, name: str = "model") -> str:
    """The HTML page classifying drawings with this ONNX model (`offered_for(facts)` must hold)."""
    if not offered_for(facts):
        raise ValueError("The browser page takes drawings: it is made for one-channel, square models only.")
    size = facts.input_shape[0]
    digit = facts.kind == "digit"
    steps = ("ink light on black, cropped, the longer side scaled to 20 px of 28, the centre of mass put at the "
             "centre" if digit else "ink light on black, cropped, scaled to fill the field, centred")
    steps += ", values in [0, 1]." if facts.normalize else ", raw pixel values 0..255."
    values = {
        "__TITLE__": html.escape(name),
        "__WHAT__": "a digit" if digit else "one of: " + html.escape(", ".join(facts.class_names)),
        "__ORT_SCRIPT__": ORT_WEB_DIST + ORT_WEB_SCRIPT,
        "__ORT_DIST__": ORT_WEB_DIST,
        "__SIZE__": str(size),
        "__STEPS__": steps,
        "__MODEL__": base64.b64encode(onnx_bytes).decode("ascii"),
        "__CLASS_NAMES__": json.dumps(list(facts.class_names)).replace("<", "\\u003c"),  # no </script> inside
        "__BOX__": "Math.round(SIZE * 20 / 28)" if digit else "SIZE",
        "__BY_MASS__": "true" if digit else "false",
        "__SCALE__": "1" if facts.normalize else "255",
    }
    # One pass: a value (a class name, say) is never scanned for placeholders itself.
    return re.sub(r"__[A-Z_]+__", lambda found: values.get(found.group(0), found.group(0)), PAGE)
