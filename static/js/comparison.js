/* The page of a cohort comparison (cohorts/comparison_detail.html): polls status.json until every site has ended,
 * then draws an UpSet-style chart with the locally served Plotly — a bar per combination of the cohorts (persons
 * in exactly those cohorts), the dots below each bar marking its cohorts, and each cohort's own total on the left
 * — and a table (combination, persons, % of the union), for all sites merged or for one site (the selector).
 *
 * Every number comes already protected by the server ({value, display, hidden}); this file shows `display`
 * ("<10", "1,230") and never computes a number from hidden cells: a hidden bar is drawn empty with its "<10"
 * label, a merged bar with a hidden site at what the shown sites add up to (its lower bound), labelled as such.
 * Combinations are drawn in the server's fixed order (never by size). Text from the server is set with
 * textContent, never as HTML. No inline script: the page passes its URL in a data-* attribute.
 */
(function () {
  "use strict";

  const { _, interpolate, STATES, el, replace } = window.Soyang;

  const root = document.getElementById("comparison");
  if (!root) {
    return;
  }
  const statusUrl = root.dataset.statusUrl;
  const section = document.getElementById("overlap");
  const select = document.getElementById("overlap-view");
  const RETRY_MS = 3000;
  const COLORS = ["#1f6fb2", "#d9822b", "#2e8b57", "#8e44ad"];
  let latest = null;

  // The worker's progress labels, in the reader's language: "cohort 2 of 3: <name>", "combinations", "Done".
  function progressLabel(label) {
    const step = /^cohort (\d+) of (\d+): (.*)$/.exec(label || "");
    if (step) {
      return interpolate(_("cohort %(n)s of %(k)s: %(name)s"), { n: step[1], k: step[2], name: step[3] }, true);
    }
    return { combinations: _("Counting the combinations"), Done: _("Done") }[label] || label || "";
  }

  function drawn(count) {
    // The bar's length: the released value, or what the shown sites add up to; a hidden count is drawn empty.
    if (count.value !== null && count.value !== undefined) {
      return count.value;
    }
    return count.lower_bound || 0;
  }

  function percent(value) {
    return value === null || value === undefined ? "" : value.toFixed(1) + "%";
  }

  function views(result) {
    const out = [];
    const answered = result.sites.filter((site) => site.union);
    if (result.merged) {
      out.push({ id: "merged", label: _("All sites (merged)"), block: result.merged,
        rule: result.merged.privacy.description + " " + _("(strictest of the sites' rules)") });
    }
    answered.forEach((site) => {
      out.push({ id: "site-" + site.source, label: site.site + " (" + site.source + ")", block: site,
        rule: site.privacy.description });
    });
    return out;
  }

  function renderSites(result) {
    root.querySelector("[data-field=state]").textContent = STATES[result.state] || result.state;
    const body = document.querySelector("#comparison-sites tbody");
    replace(body, null);
    result.sites.forEach((site) => {
      const tr = body.insertRow();
      [site.site + " (" + site.source + ")", STATES[site.state] || site.state, progressLabel(site.progress.label),
        site.union ? site.union.display : "—", site.privacy.description, site.error].forEach((text, i) => {
        const td = tr.insertCell();
        td.textContent = text || "";
        if (i === 3) {
          td.className = "num";
        }
        if (i === 4) {
          td.className = "hint";
        }
      });
    });
    const cancel = document.getElementById("cancel-form");
    if (cancel && !result.can_cancel) {
      cancel.hidden = true;
    }
  }

  function renderChart(result, view) {
    const chart = document.getElementById("overlap-chart");
    const cohorts = result.cohorts;
    const block = view.block;
    if (!window.Plotly) {
      replace(chart, el("p", _("The chart library did not load; the table below holds the same numbers."), "hint"));
      return;
    }
    if (block.breakdown_withheld) {
      replace(chart, null);
      return;
    }
    const xs = result.combinations.map((c) => c.label);
    const cells = block.combinations;
    const bars = {
      type: "bar", x: xs, y: cells.map(drawn), text: cells.map((c) => c.display), textposition: "outside",
      cliponaxis: false, marker: { color: "#444" }, xaxis: "x", yaxis: "y",
      hovertemplate: "%{x}: %{text}<extra></extra>", showlegend: false
    };
    // The membership matrix: a dot per combination and cohort, dark where the cohort is in the combination.
    const names = cohorts.map((c) => c.letter + " · " + (c.name.length > 26 ? c.name.slice(0, 25) + "…" : c.name));
    const dots = { type: "scatter", mode: "markers", x: [], y: [], marker: { size: 14, color: [] }, xaxis: "x",
      yaxis: "y2", hoverinfo: "skip", showlegend: false };
    const lines = [];
    result.combinations.forEach((c) => {
      cohorts.forEach((cohort, i) => {
        dots.x.push(c.label);
        dots.y.push(names[i]);
        dots.marker.color.push(c.members.indexOf(i) >= 0 ? COLORS[i] : "#d8d8d8");
      });
      if (c.members.length > 1) {
        lines.push({ type: "scatter", mode: "lines", x: c.members.map(() => c.label),
          y: c.members.map((i) => names[i]), line: { color: "#444", width: 3 }, xaxis: "x", yaxis: "y2",
          hoverinfo: "skip", showlegend: false });
      }
    });
    const totals = {
      type: "bar", orientation: "h", y: names, x: block.cohorts.map(drawn), text: block.cohorts.map((c) => c.display),
      textposition: "outside", cliponaxis: false, marker: { color: cohorts.map((c, i) => COLORS[i]) },
      xaxis: "x2", yaxis: "y2", hovertemplate: "%{y}: %{text}<extra></extra>", showlegend: false
    };
    // UpSet's layout: the cohorts' totals on the left, their names between them and the matrix, the bars above it.
    const layout = {
      height: 420 + 30 * cohorts.length,
      margin: { l: 20, r: 20, t: 20, b: 20 },
      font: { size: 12 },
      xaxis: { domain: [0.42, 1], type: "category", categoryorder: "array", categoryarray: xs, showticklabels: false,
        anchor: "y" },
      yaxis: { domain: [0.42, 1], title: { text: _("persons in exactly these cohorts") }, rangemode: "tozero" },
      yaxis2: { domain: [0, 0.36], type: "category", categoryorder: "array", categoryarray: names.slice().reverse(),
        anchor: "x2", side: "right", ticks: "", ticklabelstandoff: 8 },
      // Reversed, with room on the left for the longest total's label.
      xaxis2: { domain: [0, 0.17], anchor: "y2", range: [1.45 * Math.max(1, ...totals.x), 0], showticklabels: false,
        showgrid: false, zeroline: false, title: { text: _("cohort total"), standoff: 4 } }
    };
    window.Plotly.react(chart, [bars, ...lines, dots, totals], layout, { displaylogo: false, responsive: true });
  }

  function renderTable(result, view) {
    const block = view.block;
    const cohorts = result.cohorts;
    const t = el("table", null, "grid");
    t.id = "overlap-table";
    const head = t.createTHead().insertRow();
    [_("Combination")].concat(cohorts.map((c) => c.letter), [_("Persons"), _("% of union")]).forEach((h, i) => {
      const th = el("th", h);
      th.scope = "col";
      if (i > cohorts.length) {
        th.className = "num";
      }
      head.appendChild(th);
    });
    const body = t.createTBody();
    function row(label, marks, count, share, className) {
      const tr = body.insertRow();
      if (className) {
        tr.className = className;
      }
      tr.insertCell().textContent = label;
      marks.forEach((mark, i) => {
        const td = tr.insertCell();
        td.textContent = mark ? "●" : "○";
        td.className = "dot";
        if (mark) {
          td.style.color = COLORS[i];
        }
        td.setAttribute("aria-label", mark ? _("in") : _("not in"));
      });
      const persons = tr.insertCell();
      persons.textContent = count.display;
      persons.className = "num";
      const pct = tr.insertCell();
      pct.textContent = share;
      pct.className = "num";
    }
    cohorts.forEach((c, i) => {
      row(interpolate(_("%(letter)s total: %(name)s"), { letter: c.letter, name: c.name }, true),
        cohorts.map((_c, j) => j === i), block.cohorts[i], "", "total");
    });
    row(_("Union (in any cohort)"), cohorts.map(() => true), block.union, block.union.hidden ? "" : "100.0%", "total");
    if (!block.breakdown_withheld) {
      result.combinations.forEach((c, index) => {
        const cell = block.combinations[index];
        row(interpolate(_("%(label)s only"), { label: c.label }, true), cohorts.map((_c, i) => c.members.indexOf(i) >= 0),
          cell, percent(cell.percent));
      });
    }
    replace(section.querySelector("[data-table=overlap]"), t);
  }

  function render(result) {
    latest = result;
    renderSites(result);
    const available = views(result);
    if (!result.finished || !available.length) {
      section.hidden = !available.length;
      if (!available.length) {
        return;
      }
    }
    section.hidden = false;
    const chosen = select.value;
    replace(select, null);
    available.forEach((view) => {
      const option = el("option", view.label);
      option.value = view.id;
      select.appendChild(option);
    });
    if (available.some((view) => view.id === chosen)) {
      select.value = chosen;
    }
    show();
  }

  function show() {
    const view = views(latest).find((v) => v.id === select.value) || views(latest)[0];
    const withheld = section.querySelector("[data-field=withheld]");
    if (view.block.breakdown_withheld) {
      withheld.textContent = view.id === "merged"
        ? _("No combinations for all sites together: a site's union or combinations are not shown.")
        : _("No combinations for this site: the union is under the site's threshold, or no suppression could keep a hidden count from being worked out.");
      withheld.hidden = false;
    } else {
      withheld.hidden = true;
    }
    section.querySelector("[data-field=overlap-rule]").textContent = view.rule;
    renderChart(latest, view);
    renderTable(latest, view);
  }

  select.addEventListener("change", show);

  function poll() {
    fetch(statusUrl + "?wait=2", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then((result) => {
        render(result);
        if (!result.finished && !result.cancelled) {
          window.setTimeout(poll, 200);
        }
      })
      .catch(() => window.setTimeout(poll, RETRY_MS));
  }

  poll();
})();
