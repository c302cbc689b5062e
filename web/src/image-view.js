// RadiographView draws the analysed radiograph on a canvas with zoom, pan
// and window/level, and over it the regions the model read (boxes with
// labels) and their heat maps.

const MIN_ZOOM = 0.5;
const MAX_ZOOM = 16;
const PAN_STEP = 40; // CSS pixels per arrow key press

/** Default window/level: the image as the model saw it (identity on 8-bit pixels). */
export const DEFAULT_WINDOW = 256;
export const DEFAULT_LEVEL = 128;

export class RadiographView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.windowed = document.createElement("canvas");
    this.image = null;
    this.pixels = null; // the image's own RGBA pixels
    this.regions = []; // {box: [x, y, w, h] in image pixels, label, heatmap: HTMLImageElement|null}
    this.zoom = 1;
    this.panX = 0; // CSS pixels from the centred fit
    this.panY = 0;
    this.window = DEFAULT_WINDOW;
    this.level = DEFAULT_LEVEL;
    this.heatmapOn = true;
    this.heatmapOpacity = 0.5;
    this.frame = 0;
    this.windowDirty = false;
    this.listen();
  }

  /** setImage shows img (decoded) and resets the view and window/level. */
  setImage(img) {
    this.image = img;
    this.windowed.width = img.naturalWidth;
    this.windowed.height = img.naturalHeight;
    const wctx = this.windowed.getContext("2d");
    wctx.drawImage(img, 0, 0);
    this.pixels = wctx.getImageData(0, 0, img.naturalWidth, img.naturalHeight);
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.setWindowLevel(DEFAULT_WINDOW, DEFAULT_LEVEL);
    this.drawNow();
  }

  /** setRegions replaces the overlay; boxes are in the shown image's pixels. */
  setRegions(regions) {
    this.regions = regions;
    this.redraw();
  }

  setWindowLevel(window, level) {
    this.window = Math.max(2, window);
    this.level = level;
    this.windowDirty = true;
    this.redraw();
  }

  setHeatmap(on, opacity) {
    this.heatmapOn = on;
    this.heatmapOpacity = opacity;
    this.redraw();
  }

  resetView() {
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.redraw();
  }

  /** zoomBy zooms by factor about (cx, cy), a point in CSS pixels on the canvas (default its centre). */
  zoomBy(factor, cx, cy) {
    if (!this.image) return;
    const dpr = this.dpr();
    const rect = this.canvas.getBoundingClientRect();
    const px = (cx ?? rect.width / 2) * dpr;
    const py = (cy ?? rect.height / 2) * dpr;
    const before = this.transform();
    const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.zoom * factor));
    const ix = (px - before.ox) / before.s;
    const iy = (py - before.oy) / before.s;
    this.zoom = zoom;
    const s = this.fit() * zoom;
    const { width: cw, height: ch } = this.canvas;
    this.panX = (px - ix * s - (cw - this.image.naturalWidth * s) / 2) / dpr;
    this.panY = (py - iy * s - (ch - this.image.naturalHeight * s) / 2) / dpr;
    this.redraw();
  }

  panBy(dx, dy) {
    this.panX += dx;
    this.panY += dy;
    this.redraw();
  }

  dpr() {
    return window.devicePixelRatio || 1;
  }

  fit() {
    const { width: cw, height: ch } = this.canvas;
    return Math.min(cw / this.image.naturalWidth, ch / this.image.naturalHeight);
  }

  // transform maps image pixels to canvas pixels: canvas = o + s * image.
  transform() {
    const s = this.fit() * this.zoom;
    const dpr = this.dpr();
    return {
      s,
      ox: (this.canvas.width - this.image.naturalWidth * s) / 2 + this.panX * dpr,
      oy: (this.canvas.height - this.image.naturalHeight * s) / 2 + this.panY * dpr,
    };
  }

  listen() {
    const c = this.canvas;
    new ResizeObserver(() => this.redraw()).observe(c);
    c.addEventListener(
      "wheel",
      (e) => {
        if (!this.image) return;
        e.preventDefault();
        const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
        this.zoomBy(Math.exp(-delta * 0.002), e.offsetX, e.offsetY);
      },
      { passive: false },
    );
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      c.setPointerCapture(e.pointerId);
      drag = { x: e.clientX, y: e.clientY };
      c.classList.add("dragging");
    });
    c.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.panBy(e.clientX - drag.x, e.clientY - drag.y);
      drag = { x: e.clientX, y: e.clientY };
    });
    const stop = (e) => {
      if (!drag) return;
      drag = null;
      c.classList.remove("dragging");
      if (c.hasPointerCapture(e.pointerId)) c.releasePointerCapture(e.pointerId);
    };
    c.addEventListener("pointerup", stop);
    c.addEventListener("pointercancel", stop);
    c.addEventListener("keydown", (e) => {
      const pan = { ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP] }[e.key];
      if (pan) this.panBy(...pan);
      else if (e.key === "+" || e.key === "=") this.zoomBy(1.25);
      else if (e.key === "-") this.zoomBy(0.8);
      else if (e.key === "0") this.resetView();
      else return;
      e.preventDefault();
    });
  }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.drawNow();
    });
  }

  // applyWindow maps the image's 8-bit pixels through the window/level
  // lookup table into the windowed canvas.
  applyWindow() {
    const lo = this.level - this.window / 2;
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) lut[v] = Math.round(((v - lo) / (this.window - 1)) * 255);
    const src = this.pixels.data;
    const out = new ImageData(this.pixels.width, this.pixels.height);
    const dst = out.data;
    for (let i = 0; i < src.length; i += 4) {
      dst[i] = lut[src[i]];
      dst[i + 1] = lut[src[i + 1]];
      dst[i + 2] = lut[src[i + 2]];
      dst[i + 3] = src[i + 3];
    }
    this.windowed.getContext("2d").putImageData(out, 0, 0);
    this.windowDirty = false;
  }

  drawNow() {
    const c = this.canvas;
    const dpr = this.dpr();
    const rect = c.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    if (!this.image) return;
    if (this.windowDirty) this.applyWindow();
    const { s, ox, oy } = this.transform();
    ctx.setTransform(s, 0, 0, s, ox, oy);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.windowed, 0, 0);
    let overlay = false;
    if (this.heatmapOn) {
      ctx.globalAlpha = this.heatmapOpacity;
      for (const r of this.regions) {
        if (!r.heatmap) continue;
        ctx.drawImage(r.heatmap, r.box[0], r.box[1], r.box[2], r.box[3]);
        overlay = true;
      }
      ctx.globalAlpha = 1;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    for (const r of this.regions) {
      this.drawRegion(r, s, ox, oy, dpr);
      overlay = true;
    }
    c.dataset.loaded = "true";
    if (overlay) c.dataset.overlay = "true";
  }

  // drawRegion strokes a region's box (a dark edge under a light one, to
  // show on any grey) and its label above it, in screen pixels.
  drawRegion(r, s, ox, oy, dpr) {
    const ctx = this.ctx;
    const x = ox + r.box[0] * s;
    const y = oy + r.box[1] * s;
    const w = r.box[2] * s;
    const h = r.box[3] * s;
    ctx.lineWidth = 4 * dpr;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = "#ffd400";
    ctx.strokeRect(x, y, w, h);
    if (!r.label) return;
    const size = 13 * dpr;
    ctx.font = `${size}px system-ui, sans-serif`;
    const pad = 3 * dpr;
    const tw = ctx.measureText(r.label).width;
    const ly = y - size - 2 * pad >= 0 ? y - size - 2 * pad : y + h;
    ctx.fillStyle = "rgba(0, 0, 0, 0.8)";
    ctx.fillRect(x, ly, tw + 2 * pad, size + 2 * pad);
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "top";
    ctx.fillText(r.label, x + pad, ly + pad);
  }
}
