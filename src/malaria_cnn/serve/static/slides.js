/* Slides page (/): every slide with its figures; export all or the selected slides. */
"use strict";

(() => {
  const { el } = MC;
  const body = document.getElementById("slides-body");
  const table = document.getElementById("slides-table");
  const empty = document.getElementById("empty");
  const status = document.getElementById("slides-status");
  const selectAll = document.getElementById("select-all");
  const exportSelected = document.getElementById("export-selected");
  const selected = new Set();
  let known = [];
  let timer = null;

  function exportUrl(ids) {
    const query = ids.map((id) => `slide=${encodeURIComponent(id)}`).join("&");
    return query ? `/api/export?${query}` : "/api/export";
  }

  function updateExport() {
    const ids = known.map((s) => s.id).filter((id) => selected.has(id));
    exportSelected.disabled = ids.length === 0;
    exportSelected.textContent = `Export selected (${ids.length})`;
    exportSelected.dataset.href = exportUrl(ids);
    selectAll.checked = known.length > 0 && ids.length === known.length;
    selectAll.indeterminate = ids.length > 0 && ids.length < known.length;
  }

  function row(slide) {
    const review = slide.review || {};
    const model = slide.model;
    const check = el("input", {
      type: "checkbox", class: "select-slide", value: slide.id,
      "aria-label": `Select slide ${slide.name} for export`,
    });
    check.checked = selected.has(slide.id);
    check.addEventListener("change", () => {
      if (check.checked) selected.add(slide.id); else selected.delete(slide.id);
      updateExport();
    });
    const reviewCell = el("td", { class: "review-cell" }, MC.reviewProgress(review));
    if (review.flagged && review.complete) {
      reviewCell.textContent = `${review.answered}/${review.flagged} answered `;
      reviewCell.append(el("span", { class: "badge badge-clear", text: "complete" }));
    }
    return el("tr", { dataset: { slideId: slide.id } },
      el("td", {}, check),
      el("th", { scope: "row" },
        el("a", { href: `/slides/${slide.id}`, text: slide.name }),
        el("div", { class: "hint", text: MC.date(slide.created) })),
      el("td", { text: MC.photoCounts(slide) }),
      el("td", { class: "num", text: String(slide.cells_total) }),
      el("td", { class: "num", text: `${slide.called} (${MC.pct(slide.called_share)})` }),
      el("td", { text: model ? MC.interval(model.parasitemia, model.lower, model.upper) : "—" }),
      el("td", {}, MC.answerBadge(slide.answer, slide.provisional)),
      reviewCell,
      el("td", {}, review.flagged
        ? el("a", { href: `/slides/${slide.id}/review`, "aria-label": `Review ${slide.name}`, text: "Review" })
        : el("a", { href: `/slides/${slide.id}`, "aria-label": `Open ${slide.name}`, text: "Open" })));
  }

  function render(slides) {
    known = slides.slice().sort((a, b) => (b.created || 0) - (a.created || 0) || b.id - a.id);
    for (const id of [...selected]) if (!known.some((s) => s.id === id)) selected.delete(id);
    body.replaceChildren(...known.map(row));
    table.hidden = known.length === 0;
    empty.hidden = known.length !== 0;
    const waiting = known.reduce((n, s) => n + (s.photos_queued || 0), 0);
    status.textContent = known.length === 0 ? "" :
      `${MC.count(known.length, "slide")}` + (waiting ? `; ${MC.count(waiting, "photo")} waiting to be screened.` : ".");
    updateExport();
    return waiting;
  }

  async function load() {
    clearTimeout(timer);
    let waiting = 0;
    try {
      const data = await MC.api("GET", "/api/slides");
      waiting = render(data.slides || []);
    } catch (_) {
      status.textContent = "Could not load the slides.";
      timer = setTimeout(load, 5000);
      return;
    }
    if (waiting) timer = setTimeout(load, 2000);
  }

  selectAll.addEventListener("change", () => {
    for (const s of known) if (selectAll.checked) selected.add(s.id); else selected.delete(s.id);
    for (const box of body.querySelectorAll(".select-slide")) box.checked = selectAll.checked;
    updateExport();
  });
  document.getElementById("export-all").addEventListener("click", () => MC.download("/api/export", status));
  exportSelected.addEventListener("click", () => {
    if (!exportSelected.disabled) MC.download(exportSelected.dataset.href, status);
  });

  load();
})();
