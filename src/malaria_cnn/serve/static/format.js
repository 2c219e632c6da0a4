/* malaria-cnn serve: how every page words figures, answers, cells and a slide's summary (added to MC). */
"use strict";

Object.assign(MC, (() => {
  const { el, append } = MC;
  const ANSWER_LABEL = {
    parasitized: "Parasitized",
    uninfected: "Uninfected",
    not_cell: "Not a red cell",
    skip: "Skipped",
  };

  /* ---- formatting ---- */
  const isNum = (x) => typeof x === "number" && Number.isFinite(x);
  const pctNumber = (x, digits = 2) => (x * 100).toFixed(digits);

  function pct(x) {
    return isNum(x) ? `${pctNumber(x)}%` : "—";
  }

  /** "1.23% (0.40–2.90%)" */
  function interval(p, lower, upper) {
    if (!isNum(p)) return "—";
    if (!isNum(lower) || !isNum(upper)) return pct(p);
    return `${pctNumber(p)}% (${pctNumber(lower)}–${pctNumber(upper)}%)`;
  }

  function p3(p) {
    return isNum(p) ? p.toFixed(3) : "—";
  }

  function count(n, word, plural) {
    return `${n} ${n === 1 ? word : plural || word + "s"}`;
  }

  function date(unix) {
    if (!isNum(unix)) return "";
    return new Date(unix * 1000).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function answerLabel(answer) {
    return answer ? ANSWER_LABEL[answer] || String(answer) : "";
  }

  /** An answer as a badge with its reason as text (never colour alone); "(so far)" while photos wait. */
  function answerBadge(model, provisional) {
    const wrap = el("span", { class: "answer" });
    let cls = "badge-none";
    let label;
    if (!model) label = "No result yet";
    else if (model.answer === "infected") { cls = "badge-infected"; label = "Infected"; }
    else if (model.answer === "not infected") { cls = "badge-clear"; label = "Not infected"; }
    else if (model.answer === "refer") { cls = "badge-refer"; label = "Refer"; }
    else if (!model.answer) label = "No slide rule";
    else label = String(model.answer);
    wrap.append(el("span", { class: `badge ${cls}`, text: label + (model && provisional ? " (so far)" : "") }));
    if (model && model.reason) wrap.append(" ", el("span", { class: "reason", text: model.reason }));
    if (model && provisional) {
      wrap.append(" ", el("span", { class: "hint provisional", text: "photos are still being screened" }));
    }
    return wrap;
  }

  function photoCounts(slide) {
    const parts = [`${slide.photos_done}/${slide.photos_total} done`];
    if (slide.photos_queued) parts.push(`${slide.photos_queued} waiting`);
    if (slide.photos_failed) parts.push(`${slide.photos_failed} failed`);
    if (slide.photos_referred) parts.push(`${slide.photos_referred} referred`);
    return parts.join(", ");
  }

  function reviewProgress(review) {
    if (!review) return "—";
    if (!review.flagged) return "no cells flagged";
    const remain = review.flagged - review.answered;
    return review.complete ? `${review.answered}/${review.flagged} answered, complete`
      : `${review.answered}/${review.flagged} answered, ${remain} to go`;
  }

  /** [term, value] rows as a definition list; a null row is left out. */
  function dl(rows) {
    const list = el("dl", { class: "facts" });
    for (const [term, value] of rows.filter(Boolean)) {
      list.append(el("dt", { text: term }), append(el("dd"), [value]));
    }
    return list;
  }

  /** A cell's facts row saying what segmentation found it to be (an uncertain object may not be a red cell at
      all); null for a cell found before kinds were kept. */
  function foundAs(cell) {
    if (!cell.kind) return null;
    return ["Found as", cell.kind === "uncertain object"
      ? "uncertain object: segmentation cannot tell it from a white cell, a platelet or debris" : cell.kind];
  }

  /** The cells found, the uncertain objects among them told apart from the red cells (as `screen` says). */
  function cellsFound(slide) {
    const n = slide.cells_total, objects = slide.objects_total || 0;
    if (!objects) return ["Red cells found", String(n)];
    return ["Cells found", `${n} (${n - objects} red cells, ${count(objects, "uncertain object")})`];
  }

  /** The slide summary: its answer after the review so far, the model's alone beside it. */
  function summary(slide, options = {}) {
    const model = slide.model;
    const review = slide.review || {};
    const after = slide.answer;
    const answerPart = el("section", { class: "sum-answer", "aria-label": "The slide's answer" },
      el("h3", { text: "Answer" }),
      el("p", { id: "slide-answer" }, answerBadge(after, slide.provisional)),
      dl([["Review reaches", after && isNum(after.detection_limit)
        ? `${pctNumber(after.detection_limit, 3)}% (once every flagged cell is answered and none is a parasite)`
        : "—"]]));
    const modelPart = el("section", { class: "sum-model", "aria-label": "The model's answer alone" },
      el("h3", { text: "Model alone" }),
      el("p", {}, answerBadge(model, slide.provisional)),
      dl([
        ["Corrected parasitemia", model ? interval(model.parasitemia, model.lower, model.upper) : "—"],
        cellsFound(slide),
        ["Called parasitized", `${slide.called} (${pct(slide.called_share)})`],
        ["Photos", photoCounts(slide)],
      ]));
    let status;
    if (!review.flagged) status = el("span", { class: "badge badge-clear", text: "Nothing flagged" });
    else if (review.complete) status = el("span", { class: "badge badge-clear", text: "Complete" });
    else {
      const remain = review.flagged - review.answered;
      status = el("span", { class: "badge badge-refer", text: `${remain} of ${review.flagged} flagged to answer` });
    }
    const reviewRows = [
      ["Parasitized, confirmed", String(review.parasitized ?? "—")],
      ["Red cells", String(review.red_cells ?? "—")],
      ["Parasitemia", interval(review.parasitemia, review.lower, review.upper)],
      ["Answered", `${review.answered ?? 0} of ${review.flagged ?? 0} flagged` +
        (review.skipped ? `, ${review.skipped} skipped` : "") +
        (review.not_cell ? `, ${review.not_cell} not a red cell` : "")],
    ];
    const reviewPart = el("section", { class: "sum-review", "aria-label": "The review so far" },
      el("h3", { text: "Review" }),
      el("p", {}, status),
      dl(reviewRows));
    if (options.reviewLink && review.flagged) {
      reviewPart.append(el("p", {}, el("a", { href: `/slides/${slide.id}/review`, text: review.complete ? "Change answers" : "Review the flagged cells" })));
    }
    return el("div", { class: "summary-grid" }, answerPart, reviewPart, modelPart);
  }

  return {
    pct, interval, p3, count, date, answerLabel, answerBadge, photoCounts, reviewProgress, summary, dl,
    foundAs, ANSWER_LABEL,
  };
})());
