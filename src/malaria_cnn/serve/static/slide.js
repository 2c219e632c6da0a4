/* Slide page (/slides/{id}): the summary, then each photo with its cells outlined; zoom, pan, cell details. */
"use strict";

(() => {
  const { el } = MC;
  const SVG = "http://www.w3.org/2000/svg";
  const POLL_MS = 2000;
  const id = MC.slideId();
  const summaryBox = document.getElementById("summary");
  const pending = document.getElementById("pending");
  const problems = document.getElementById("problems");
  const problemList = document.getElementById("problem-list");
  const photoList = document.getElementById("photo-list");
  const noPhotos = document.getElementById("no-photos");
  const viewers = new Map(); // photo id -> Viewer
  let timer = null;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function cellLabel(cell) {
    const parts = [`Cell ${cell.n}`, `model: ${cell.label}`, `p ${MC.p3(cell.p)}`];
    if (cell.flagged) parts.push("flagged for review");
    if (cell.answer && cell.answer !== "skip") parts.push(`answered: ${MC.answerLabel(cell.answer)}`);
    return parts.join(", ");
  }

  /* ---- one photo: viewport with the display JPEG and an SVG of the cells ---- */
  class Viewer {
    constructor(photo) {
      this.photo = photo;
      this.cells = new Map();
      this.scale = 1;
      this.fit = 1;
      this.tx = 0;
      this.ty = 0;
      this.atFit = true;
      this.selected = null;
      this.dispW = Math.max(1, Math.round(photo.width * photo.display_scale));
      this.dispH = Math.max(1, Math.round(photo.height * photo.display_scale));
      this.build();
    }

    build() {
      const p = this.photo;
      const name = p.name || `photo ${p.id}`;
      this.zoomLabel = el("span", { class: "zoom-label", "aria-live": "polite", text: "" });
      const button = (text, label, fn) => el("button", { type: "button", "aria-label": label, onclick: fn, text });
      const toolbar = el("div", { class: "viewer-tools", role: "toolbar", "aria-label": `Zoom ${name}` },
        button("−", "Zoom out", () => this.zoomCenter(1 / 1.4)),
        button("+", "Zoom in", () => this.zoomCenter(1.4)),
        button("Fit", "Fit the photo", () => this.reset()),
        this.zoomLabel);
      this.img = el("img", {
        src: `/api/photos/${p.id}/image`, alt: `Photo ${name}`, width: this.dispW, height: this.dispH, draggable: "false",
      });
      this.svg = svg("svg", {
        class: "cells", viewBox: `0 0 ${p.width} ${p.height}`, width: this.dispW, height: this.dispH,
        preserveAspectRatio: "none", role: "group", "aria-label": `Cells of ${name}`,
      });
      this.stage = el("div", { class: "stage" }, this.img, this.svg);
      this.stage.style.width = `${this.dispW}px`;
      this.stage.style.height = `${this.dispH}px`;
      this.viewport = el("div", {
        class: "viewport", tabindex: "0", role: "region",
        "aria-label": `${name}: + and − zoom, arrow keys pan, Tab moves through the cells`,
      }, this.stage);
      this.viewport.style.aspectRatio = `${this.dispW} / ${this.dispH}`;
      this.details = el("aside", { class: "cell-details", "aria-live": "polite", "aria-label": `Cell details for ${name}` },
        el("p", { class: "hint", text: "Click a cell (or focus it and press Enter) to see its crop, p and Grad-CAM." }));
      const heading = el("h3", {}, name);
      const facts = el("p", { class: "hint photo-facts" });
      this.facts = facts;
      this.note = el("p", { class: "note", hidden: true });
      this.root = el("figure", { class: "photo", dataset: { photoId: p.id, state: p.state } },
        el("figcaption", {}, heading, facts, this.note),
        el("div", { class: "photo-body" },
          el("div", { class: "viewer" }, toolbar, this.viewport),
          this.details));
      this.update(p);
      this.bind();
    }

    update(photo) {
      this.photo = photo;
      this.root.dataset.state = photo.state;
      const n = photo.cells_total ?? 0;
      this.facts.textContent = `${MC.count(n, "cell")}, ${photo.called ?? 0} called parasitized` +
        ` · ${photo.width}×${photo.height} px`;
      if (photo.state === "referred") {
        this.note.hidden = false;
        this.note.textContent = `Referred, not counted: ${photo.referred || "no reason given"}`;
      }
    }

    async load() {
      try {
        const data = await MC.api("GET", `/api/photos/${this.photo.id}`);
        this.update(data);
        this.draw(data.cells || []);
      } catch (_) { /* banner */ }
    }

    draw(cells) {
      const p = this.photo;
      const markR = Math.max(p.width, p.height) / 90;
      this.svg.replaceChildren();
      this.cells.clear();
      for (const cell of cells) {
        const [bx, by, bw, bh] = cell.box;
        const outline = cell.outline && cell.outline.length >= 3 ? cell.outline
          : [[bx, by], [bx + bw, by], [bx + bw, by + bh], [bx, by + bh]];
        const cls = ["cell", cell.label === "Parasitized" ? "par" : "uni"];
        if (cell.flagged) cls.push("doubt");
        const answered = cell.answer && cell.answer !== "skip";
        if (answered) cls.push("answered", `ans-${cell.answer}`);
        const g = svg("g", { class: cls.join(" "), "data-cell-id": cell.id, tabindex: "0", role: "button", "aria-label": cellLabel(cell) });
        const title = svg("title");
        title.textContent = cellLabel(cell);
        g.append(title, svg("polygon", { points: outline.map((pt) => pt.join(",")).join(" ") }));
        if (answered) {
          const cx = bx + bw;
          const cy = by;
          g.append(svg("path", {
            class: "marker",
            d: `M${cx} ${cy - markR} L${cx + markR} ${cy} L${cx} ${cy + markR} L${cx - markR} ${cy} Z`,
          }));
        }
        g.addEventListener("click", () => this.select(cell.id));
        g.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.select(cell.id); }
        });
        g.addEventListener("focus", () => this.reveal(cell));
        this.svg.append(g);
        this.cells.set(cell.id, { cell, node: g });
      }
    }

    select(cellId) {
      const entry = this.cells.get(cellId);
      if (!entry) return;
      if (this.selected) this.selected.node.classList.remove("selected");
      this.selected = entry;
      entry.node.classList.add("selected");
      const cell = entry.cell;
      const gradBox = el("div", { class: "gradcam-box" });
      const gradButton = el("button", { type: "button", class: "gradcam-button", text: "Show Grad-CAM" });
      gradButton.addEventListener("click", () => {
        gradButton.disabled = true;
        gradButton.textContent = "Computing Grad-CAM…";
        const img = el("img", { src: `/api/cells/${cell.id}/gradcam`, alt: `Grad-CAM of cell ${cell.n}`, class: "gradcam" });
        img.addEventListener("load", () => gradButton.remove());
        img.addEventListener("error", () => {
          gradButton.textContent = "Grad-CAM unavailable";
          img.remove();
        });
        gradBox.append(img);
      });
      gradBox.append(gradButton);
      this.details.dataset.shownCellId = cell.id;
      this.details.replaceChildren(
        el("h4", { text: `Cell ${cell.n}` }),
        el("div", { class: "detail-images" },
          el("img", { src: `/api/cells/${cell.id}/crop`, alt: `Crop of cell ${cell.n}`, class: "crop" }),
          gradBox),
        MC.dl([
          ["p (parasitized)", MC.p3(cell.p)],
          ["Model's call", cell.label],
          MC.foundAs(cell),
          ["Flagged for review", cell.flagged ? "yes" : "no"],
          ["Person's answer", cell.answer ? MC.answerLabel(cell.answer) : "none"],
        ]),
        ...(cell.flagged ? [el("p", {}, el("a", { href: `/slides/${id}/review`, text: "Answer it on the review page" }))] : []));
    }

    /* ---- zoom and pan: one CSS transform on the stage ---- */
    apply() {
      this.clamp();
      this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
      this.zoomLabel.textContent = `${Math.round((this.scale / this.fit) * 100)}%`;
    }

    clamp() {
      const vw = this.viewport.clientWidth;
      const vh = this.viewport.clientHeight;
      const w = this.dispW * this.scale;
      const h = this.dispH * this.scale;
      this.tx = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, this.tx));
      this.ty = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, this.ty));
    }

    reset() {
      const vw = this.viewport.clientWidth;
      const vh = this.viewport.clientHeight;
      if (!vw || !vh) return;
      this.fit = Math.min(vw / this.dispW, vh / this.dispH);
      this.scale = this.fit;
      this.atFit = true;
      this.apply();
    }

    zoomAt(factor, cx, cy) {
      const next = Math.min(this.fit * 20, Math.max(this.fit, this.scale * factor));
      this.tx = cx - (cx - this.tx) * (next / this.scale);
      this.ty = cy - (cy - this.ty) * (next / this.scale);
      this.scale = next;
      this.atFit = Math.abs(next - this.fit) < 1e-9;
      this.apply();
    }

    zoomCenter(factor) {
      this.zoomAt(factor, this.viewport.clientWidth / 2, this.viewport.clientHeight / 2);
    }

    pan(dx, dy) {
      this.tx += dx;
      this.ty += dy;
      this.apply();
    }

    /** Pan so a focused cell is in view. */
    reveal(cell) {
      const [bx, by, bw, bh] = cell.box;
      const k = this.photo.display_scale * this.scale;
      const vw = this.viewport.clientWidth;
      const vh = this.viewport.clientHeight;
      const x0 = this.tx + bx * k, x1 = this.tx + (bx + bw) * k;
      const y0 = this.ty + by * k, y1 = this.ty + (by + bh) * k;
      if (x0 < 0 || y0 < 0 || x1 > vw || y1 > vh) {
        this.tx = vw / 2 - (bx + bw / 2) * k;
        this.ty = vh / 2 - (by + bh / 2) * k;
        this.apply();
      }
      this.viewport.scrollTop = 0;
      this.viewport.scrollLeft = 0;
    }

    bind() {
      const vp = this.viewport;
      vp.addEventListener("wheel", (e) => {
        e.preventDefault();
        const r = vp.getBoundingClientRect();
        this.zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });

      let drag = null;
      let suppressClick = false;
      vp.addEventListener("pointerdown", (e) => {
        if (e.button !== 0) return;
        drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false, pointer: e.pointerId };
      });
      vp.addEventListener("pointermove", (e) => {
        if (!drag || e.pointerId !== drag.pointer) return;
        const dx = e.clientX - drag.x;
        const dy = e.clientY - drag.y;
        if (!drag.moved && Math.hypot(dx, dy) < 4) return;
        if (!drag.moved) {
          drag.moved = true;
          vp.setPointerCapture(e.pointerId);
          vp.classList.add("dragging");
        }
        this.tx = drag.tx + dx;
        this.ty = drag.ty + dy;
        this.atFit = false;
        this.apply();
      });
      const end = (e) => {
        if (!drag || e.pointerId !== drag.pointer) return;
        if (drag.moved) {
          suppressClick = true;
          setTimeout(() => { suppressClick = false; }, 0);
        }
        vp.classList.remove("dragging");
        drag = null;
      };
      vp.addEventListener("pointerup", end);
      vp.addEventListener("pointercancel", end);
      vp.addEventListener("click", (e) => {
        if (suppressClick) { e.stopPropagation(); e.preventDefault(); suppressClick = false; }
      }, true);

      vp.addEventListener("keydown", (e) => {
        if (e.altKey || e.ctrlKey || e.metaKey) return;
        const step = 60;
        const actions = {
          "+": () => this.zoomCenter(1.4), "=": () => this.zoomCenter(1.4),
          "-": () => this.zoomCenter(1 / 1.4), "_": () => this.zoomCenter(1 / 1.4), "0": () => this.reset(),
          ArrowLeft: () => this.pan(step, 0), ArrowRight: () => this.pan(-step, 0),
          ArrowUp: () => this.pan(0, step), ArrowDown: () => this.pan(0, -step),
        };
        const act = actions[e.key];
        if (act) { e.preventDefault(); act(); }
      });
      // overflow:hidden still scrolls to a focused cell; the transform does that job
      vp.addEventListener("scroll", () => { vp.scrollTop = 0; vp.scrollLeft = 0; });
      new ResizeObserver(() => {
        if (this.atFit) this.reset();
        else this.apply();
      }).observe(vp);
    }
  }

  /* ---- the slide ---- */
  function renderProblems(photos) {
    const bad = photos.filter((p) => p.state === "failed" || p.state === "referred");
    problems.hidden = bad.length === 0;
    problemList.replaceChildren(...bad.map((p) => el("li", { dataset: { photoId: p.id, state: p.state } },
      el("strong", { text: p.name || `photo ${p.id}` }), " — ",
      el("span", { class: `state-label state-${p.state}`, text: p.state }), ": ",
      p.state === "failed" ? (p.error || "failed") : (p.referred || "referred"))));
  }

  async function load() {
    clearTimeout(timer);
    let slide;
    try {
      slide = await MC.api("GET", `/api/slides/${id}`);
    } catch (err) {
      if (err.status !== 404) timer = setTimeout(load, POLL_MS * 2);
      else summaryBox.replaceChildren(el("p", { text: err.message }));
      return;
    }
    document.getElementById("slide-name").textContent = slide.name;
    document.title = `Slide ${slide.name} · malaria-cnn`;
    summaryBox.replaceChildren(MC.summary(slide, { reviewLink: true }));
    const photos = slide.photos || [];
    renderProblems(photos);
    const waiting = photos.filter((p) => p.state === "queued" || p.state === "screening");
    pending.textContent = waiting.length
      ? `${MC.count(waiting.length, "photo")} waiting to be screened (${waiting.filter((p) => p.state === "screening").length} screening now); this page updates itself.`
      : "";
    for (const photo of photos) {
      if (photo.state !== "done" && photo.state !== "referred") continue;
      const known = viewers.get(photo.id);
      if (known) { known.update(photo); continue; }
      const viewer = new Viewer(photo);
      viewers.set(photo.id, viewer);
      photoList.append(viewer.root);
      viewer.load();
    }
    noPhotos.hidden = viewers.size > 0 || waiting.length > 0;
    if (waiting.length) timer = setTimeout(load, POLL_MS);
  }

  load();
})();
