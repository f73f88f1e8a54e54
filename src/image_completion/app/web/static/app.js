// The page of `image-completion serve`: no framework, nothing fetched from outside this server.
// The photo is decoded by the server (/api/decode) so the brush paints on exactly the pixels that
// will be filled; the mask canvas has the photo's own resolution (one mask pixel per photo pixel).
// The server's rules (server.py, guard.py): POSTs carry the Content-Type it requires
// (application/octet-stream for a photo, application/json for a fill) and come from this page's
// origin (the browser adds Origin); when busy it answers 503 with Retry-After, and the page retries.
"use strict";

const $ = (id) => document.getElementById(id);
const photoCanvas = $("photoCanvas");
const maskCanvas = $("maskCanvas");
const photoCtx = photoCanvas.getContext("2d");
const maskCtx = maskCanvas.getContext("2d", { willReadFrequently: true });
const BRUSH_COLOUR = "rgb(255, 0, 60)";
const MAX_UNDO = 30;
const MAX_TRIES = 5;  // of a POST the server answers 503 (busy)

const state = {
  imagePng: null,   // base64 PNG of the decoded photo (what the server fills)
  fileName: "photo",
  undo: [],         // ImageData snapshots of the mask canvas, taken before each change
  drawing: false,
  last: null,
  resultUrl: null,
};
// For tests and debugging: the last mask sent to /api/fill (base64 PNG, white = hole).
window.lastMaskPng = null;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function b64ToBlob(b64, type) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

function blobToB64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function updateButtons() {
  const loaded = state.imagePng !== null;
  $("undo").disabled = !loaded || state.undo.length === 0;
  $("clear").disabled = !loaded;
  $("fill").disabled = !loaded;
}

// POST; while the server answers 503 (busy), waits as long as its Retry-After says and tries again.
async function post(url, headers, body, what) {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(url, { method: "POST", headers, body });
    if (response.status !== 503 || attempt >= MAX_TRIES) return response;
    const seconds = Math.min(60, Math.max(1, Number(response.headers.get("Retry-After")) || 2));
    setStatus(`The server is busy; ${what} again in ${seconds} s (try ${attempt + 1} of ${MAX_TRIES})...`);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}

async function loadMethods() {
  const response = await fetch("/api/info");
  const info = await response.json();
  if (!response.ok) throw new Error(info.error || `HTTP ${response.status}`);
  const select = $("method");
  const labels = { model: `model (${info.model || "generator"})`, telea: "Telea (classical)",
                   ns: "Navier-Stokes (classical)", biharmonic: "biharmonic (classical)",
                   fsr: "FSR fast (classical, OpenCV-contrib)", blend: "blend of biharmonic and FSR (classical)" };
  for (const m of info.methods) {
    const option = document.createElement("option");
    option.value = m;
    option.textContent = labels[m] || m;
    select.appendChild(option);
  }
}

async function openPhoto(file) {
  setStatus(`Reading ${file.name}...`);
  const response = await post("/api/decode",
    { "Content-Type": "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
    file, `reading ${file.name}`);
  const answer = await response.json();
  if (!response.ok) {
    setStatus(answer.error || `could not read ${file.name}`, true);
    return;
  }
  const bitmap = await createImageBitmap(b64ToBlob(answer.image, "image/png"));
  for (const canvas of [photoCanvas, maskCanvas]) {
    canvas.width = answer.width;
    canvas.height = answer.height;
  }
  photoCtx.drawImage(bitmap, 0, 0);
  maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  state.imagePng = answer.image;
  state.fileName = file.name.replace(/\.[^.]*$/, "") || "photo";
  state.undo = [];
  $("result").removeAttribute("src");
  $("download").hidden = true;
  if (answer.mask) {  // transparent pixels of the photo start out as the hole
    const maskBitmap = await createImageBitmap(b64ToBlob(answer.mask, "image/png"));
    const tmp = new OffscreenCanvas(answer.width, answer.height);
    const tctx = tmp.getContext("2d");
    tctx.drawImage(maskBitmap, 0, 0);
    const data = tctx.getImageData(0, 0, answer.width, answer.height);
    const out = maskCtx.createImageData(answer.width, answer.height);
    for (let i = 0; i < data.data.length; i += 4) {
      if (data.data[i] >= 128) { out.data[i] = 255; out.data[i + 1] = 0; out.data[i + 2] = 60; out.data[i + 3] = 255; }
    }
    maskCtx.putImageData(out, 0, 0);
  }
  updateButtons();
  setStatus(`${file.name}: ${answer.width} x ${answer.height} pixels. Paint the hole, then press Fill.` +
            (answer.mask ? " (Its transparent pixels are already marked.)" : ""));
}

// ---- brush -------------------------------------------------------------------------------------
function brushWidth() {
  // The slider is in screen pixels; the mask canvas may be shown smaller or larger than its size.
  const rect = maskCanvas.getBoundingClientRect();
  return Number($("brush").value) * (maskCanvas.width / rect.width);
}

function canvasPoint(event) {
  const rect = maskCanvas.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (maskCanvas.width / rect.width),
    y: (event.clientY - rect.top) * (maskCanvas.height / rect.height),
  };
}

function pushUndo() {
  state.undo.push(maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (state.undo.length > MAX_UNDO) state.undo.shift();
  updateButtons();
}

function strokeTo(point) {
  maskCtx.strokeStyle = BRUSH_COLOUR;
  maskCtx.fillStyle = BRUSH_COLOUR;
  maskCtx.lineWidth = brushWidth();
  maskCtx.lineCap = "round";
  maskCtx.lineJoin = "round";
  if (state.last === null) {
    maskCtx.beginPath();
    maskCtx.arc(point.x, point.y, brushWidth() / 2, 0, 2 * Math.PI);
    maskCtx.fill();
  } else {
    maskCtx.beginPath();
    maskCtx.moveTo(state.last.x, state.last.y);
    maskCtx.lineTo(point.x, point.y);
    maskCtx.stroke();
  }
  state.last = point;
}

maskCanvas.addEventListener("pointerdown", (event) => {
  if (state.imagePng === null || event.button !== 0) return;
  maskCanvas.setPointerCapture(event.pointerId);
  pushUndo();
  state.drawing = true;
  state.last = null;
  strokeTo(canvasPoint(event));
});
maskCanvas.addEventListener("pointermove", (event) => {
  if (state.drawing) strokeTo(canvasPoint(event));
});
for (const type of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(type, () => { state.drawing = false; state.last = null; });
}

$("brush").addEventListener("input", () => { $("brushValue").textContent = $("brush").value; });
$("undo").addEventListener("click", () => {
  const snapshot = state.undo.pop();
  if (snapshot) maskCtx.putImageData(snapshot, 0, 0);
  updateButtons();
});
$("clear").addEventListener("click", () => {
  pushUndo();
  maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
});

// ---- fill --------------------------------------------------------------------------------------
async function maskPngB64() {
  // Painted pixels (alpha >= 128) -> white = hole; everything else black. Same threshold as files.
  const w = maskCanvas.width, h = maskCanvas.height;
  const painted = maskCtx.getImageData(0, 0, w, h).data;
  const out = new ImageData(w, h);
  for (let i = 0; i < painted.length; i += 4) {
    const v = painted[i + 3] >= 128 ? 255 : 0;
    out.data[i] = v; out.data[i + 1] = v; out.data[i + 2] = v; out.data[i + 3] = 255;
  }
  const tmp = new OffscreenCanvas(w, h);
  tmp.getContext("2d").putImageData(out, 0, 0);
  return blobToB64(await tmp.convertToBlob({ type: "image/png" }));
}

$("fill").addEventListener("click", async () => {
  $("fill").disabled = true;
  const method = $("method").value;
  setStatus(`Filling with ${method}...`);
  try {
    const mask = await maskPngB64();
    window.lastMaskPng = mask;
    const response = await post("/api/fill", { "Content-Type": "application/json" },
                                JSON.stringify({ image: state.imagePng, mask, method }), "filling");
    if (!response.ok) {
      const answer = await response.json();
      setStatus(answer.error || `fill failed (${response.status})`, true);
      return;
    }
    const blob = await response.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    $("result").src = state.resultUrl;
    const link = $("download");
    link.href = state.resultUrl;
    link.download = `${state.fileName}-filled.png`;
    link.hidden = false;
    setStatus(`Done (${method}). Compare before and after; Download saves the PNG.`);
  } catch (error) {
    setStatus(`fill failed: ${error}`, true);
  } finally {
    updateButtons();
  }
});

$("photo").addEventListener("change", () => {
  const file = $("photo").files[0];
  if (file) openPhoto(file).catch((error) => setStatus(`could not open ${file.name}: ${error}`, true));
});

loadMethods().catch((error) => setStatus(`cannot reach the server: ${error}`, true));
