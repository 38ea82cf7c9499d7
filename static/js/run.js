/* The page of one count (cohorts/run_detail.html): polls status.json about every second until every site has
 * finished, shows each site's state and protected numbers, draws the attrition funnel with the locally served
 * Plotly, hands the result to static/js/characterization.js (the characterization of a demographics request), and
 * cancels through the page's own form (its CSRF token).
 *
 * Every number comes already protected by the server ({value, display, hidden}); this file only displays
 * `display` ("<10", "1,230") and never computes a number from hidden cells. A site whose count is hidden comes
 * with no breakdown at all (`breakdown_withheld`), nor does the merged view when the merged total is hidden
 * (`merged_breakdown_withheld`): the page says so in one sentence each. Breakdowns list fixed categories in a
 * fixed order (every age band by sex, ...), drawn in that order. Text from the server is set with textContent,
 * never as HTML. No inline script: the page passes its URLs in data-* attributes.
 */
(function () {
  "use strict";

  const { _, interpolate, STATES, el, replace } = window.Soyang;

  var root = document.getElementById("run");
  if (!root) {
    return;
  }
  var statusUrl = root.dataset.statusUrl;
  var POLL_MS = 1000;
  var RETRY_MS = 3000;
  function csvUrl(table) {
    return root.dataset.csvUrl.replace("TABLE", table);
  }

  // The worker's progress labels: its few fixed sentences are translated; a step of the cohort's queries (its
  // verb and table, e.g. "build qualified events") is technical: English readers see it, others a sentence.
  var PROGRESS = {
    "Finding the cohort": _("Finding the cohort"), "Describing the cohort": _("Describing the cohort"),
    "Done": _("Done"), "combinations": _("Counting the combinations")
  };

  function progressLabel(label) {
    if (!label) {
      return "";
    }
    if (PROGRESS[label]) {
      return PROGRESS[label];
    }
    return (document.documentElement.lang || "en").indexOf("en") === 0 ? label : _("Running the cohort's queries");
  }

  function progressText(site) {
    var p = site.progress || {};
    if (site.state === "running" && p.total) {
      return (progressLabel(p.label) || _("Running")) + " (" + p.step + "/" + p.total + ")";
    }
    return progressLabel(p.label);
  }

  function renderSites(result) {
    root.querySelector("[data-field=state]").textContent = (STATES[result.state] || result.state) + (result.cancelled ? " (" + _("cancelled") + ")" : "");
    var body = root.querySelector("#sites tbody");
    replace(body, null);
    result.sites.forEach(function (site) {
      var tr = body.insertRow();
      tr.className = "state-" + site.state;
      [
        site.site + " (" + site.source + ")",
        STATES[site.state] || site.state,
        progressText(site),
        site.persons ? site.persons.display : "—",
        site.privacy.description,
        site.error || ""
      ].forEach(function (text, i) {
        var td = tr.insertCell();
        td.textContent = text;
        if (i === 3) {
          td.className = "num";
        }
        if (i === 4) {
          td.className = "hint";
        }
      });
    });
    root.querySelector("[data-field=sites-answered]").textContent =
      interpolate(_("%(answered)s of %(sites)s site(s) answered"), { answered: result.sites_answered, sites: result.sites.length }, true);
    root.querySelector("[data-field=total]").textContent = result.total ? result.total.display : "—";
    root.querySelector("[data-field=total-privacy]").textContent =
      result.total_privacy.description + (result.sites.length > 1 ? " " + _("(strictest of the sites' rules)") : "");
    var cancel = document.getElementById("cancel-form");
    if (cancel && !result.can_cancel) {
      cancel.hidden = true;
    }
  }

  function answered(result) {
    return result.sites.filter(function (site) {
      return site.persons;
    });
  }

  // The answered sites whose breakdown is released (their count is shown).
  function withBreakdown(result) {
    return answered(result).filter(function (site) {
      return !site.breakdown_withheld;
    });
  }

  /* One sentence per site whose count is hidden (and one for the merged view when the merged total is), for
   * attrition and demographics requests: a plain count shows no breakdown anyway. */
  function renderWithheld(result) {
    var holder = document.getElementById("no-breakdown");
    if (!holder) {
      return;
    }
    var lines = [];
    if (result.kind !== "count") {
      answered(result).forEach(function (site) {
        if (site.breakdown_withheld) {
          lines.push(interpolate(_("No breakdown for %(site)s: the cohort's count is under the site's threshold."),
            { site: site.site + " (" + site.source + ")" }, true));
        }
      });
      if (result.merged_breakdown_withheld || result.merged_attrition_withheld) {
        lines.push(_("No breakdown of all sites together: a site's count is under its threshold."));
      }
    }
    replace(holder, null);
    lines.forEach(function (line) {
      holder.appendChild(el("p", line, "meaning"));
    });
  }

  /* Attrition, per site (a picker when several answered) and per mode (by person / by event). Every number comes
   * protected from the server (cohorts/runs/attrition.py), lost and percentages included, each worked out there
   * from released numbers only; a derived number whose operand is hidden arrives hidden and is said "hidden". */
  var attritionResult = null;
  var ATTRITION_WRAP = 34;

  // Rule names reach Plotly, which reads its labels as a little HTML: escaped first, then wrapped with <br>.
  function plotlyText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function wrapLabel(text, width) {
    var lines = [];
    var line = "";
    String(text).split(/\s+/).forEach(function (word) {
      while (word.length > width) {
        if (line) {
          lines.push(line);
          line = "";
        }
        lines.push(word.slice(0, width));
        word = word.slice(width);
      }
      if (!word) {
        return;
      }
      if (line && (line + " " + word).length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
    });
    if (line) {
      lines.push(line);
    }
    return lines;
  }

  function derived(cell) {
    if (!cell) {
      return "—";
    }
    if (cell.hidden) {
      return cell.display && cell.display !== "hidden" ? cell.display : _("hidden");
    }
    return cell.display === "" || cell.display === undefined ? "—" : cell.display;
  }

  function attritionMode() {
    var checked = document.querySelector("input[name=attrition-mode]:checked");
    return checked ? checked.value : "person";
  }

  /* What the attrition can show: with 2+ sites, "All sites (merged)" first (the server's merged numbers, absent
   * when a site's count is hidden), then each site alone. */
  function attritionViews(result) {
    var views = withBreakdown(result).filter(function (site) { return site.attrition_table; }).map(function (site) {
      return { id: site.source, label: site.site + " (" + site.source + ")", site: site };
    });
    var merged = result.merged_attrition;
    if (merged && views.length > 1) {
      views.unshift({ id: "merged", label: _("All sites (merged)"), site: {
        site: _("All sites (merged)"), source: _("all sites"), attrition_table: merged, merged: true,
        privacy: { description: merged.privacy.description + " " + _("(strictest of the sites' rules)") } } });
    }
    return views;
  }

  function renderAttrition(result) {
    var views = attritionViews(result);
    var section = document.getElementById("attrition");
    // A plain count shows the numbers only; attrition and demographics requests show the funnel too.
    if (!views.length || result.kind === "count") {
      return;
    }
    attritionResult = result;
    section.hidden = false;
    var picker = document.getElementById("attrition-site");
    var chosen = picker.value;
    replace(picker, null);
    views.forEach(function (view) {
      var option = el("option", view.label);
      option.value = view.id;
      picker.appendChild(option);
    });
    if (views.some(function (view) { return view.id === chosen; })) {
      picker.value = chosen;
    }
    picker.closest("[data-field=attrition-site]").hidden = views.length < 2;
    var site = (views.filter(function (v) { return v.id === picker.value; })[0] || views[0]).site;
    var eventRadio = section.querySelector("input[name=attrition-mode][value=event]");
    var note = section.querySelector("[data-field=attrition-note]");
    var hasEvents = !!site.attrition_table.event;
    eventRadio.disabled = !hasEvents;
    if (!hasEvents && eventRadio.checked) {
      section.querySelector("input[name=attrition-mode][value=person]").checked = true;
    }
    var mode = attritionMode();
    var shown = site.attrition_table[mode];
    var notes = [];
    if (!hasEvents || !shown.initial) {
      notes.push(_("This result was counted before the initial row and the by-event counts were computed: count again to see them."));
    }
    note.textContent = notes.join(" ");
    note.hidden = !notes.length;
    drawAttrition(section, site, shown, mode);
    section.querySelector("[data-csv=attrition]").href = csvUrl("attrition");
  }

  function drawAttrition(section, site, shown, mode) {
    var countLabel = mode === "event" ? _("Events") : _("Persons");
    var initialLabel = mode === "event" ? _("Initial events (before any rule)") : _("Initial persons (before any rule)");
    var rows = [];
    var bars = [];
    if (shown.initial) {
      rows.push({ className: "initial", cells: ["0", initialLabel, shown.initial.display, "—", derived(shown.initial_percent), "—", "—"] });
      bars.push({ name: initialLabel, count: shown.initial, percent: shown.initial_percent });
    }
    shown.steps.forEach(function (step) {
      rows.push({ cells: [String(step.step), step.name, step.kept.display, derived(step.lost), derived(step.percent),
        derived(step.own), derived(step.own_percent)] });
      bars.push({ name: step.step + ". " + step.name, count: step.kept, percent: step.percent });
    });
    var headers = [_("Step"), _("Rule"), countLabel, _("Lost"), _("% of initial"), _("Rule alone"), _("% alone")];
    var t = el("table", null, "grid attrition");
    var caption = el("caption", site.site + " (" + site.source + ") — " + (site.privacy.short || site.privacy.description), "hint");
    if (site.merged) {
      caption.textContent = site.site + " — " + site.privacy.description;
    }
    t.appendChild(caption);
    var head = t.createTHead().insertRow();
    headers.forEach(function (h, i) {
      head.appendChild(el("th", h, i >= 2 ? "num" : null));
    });
    var body = t.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      if (row.className) {
        tr.className = row.className;
      }
      row.cells.forEach(function (cell, i) {
        var td = tr.insertCell();
        td.textContent = cell;
        td.className = i === 1 ? "rule-name" : (i >= 2 ? "num" : "");
      });
    });
    replace(section.querySelector("[data-table=attrition]"), t);

    var chart = document.getElementById("attrition-chart");
    // Each draw starts afresh (another site or mode): a purged div, never Plotly's state of the last one.
    if (window.Plotly) {
      window.Plotly.purge(chart);
    }
    if (!shown.steps.length) {
      replace(chart, el("p", _("This definition has no rules: every person with an entry event is in the cohort."), "hint"));
      return;
    }
    if (!window.Plotly) {
      replace(chart, el("p", _("The chart library did not load; the tables below hold the same numbers."), "hint"));
      return;
    }
    replace(chart, null);
    var lines = bars.map(function (bar) { return wrapLabel(bar.name, ATTRITION_WRAP); });
    var rowHeight = lines.map(function (l) { return Math.max(44, 18 * l.length + 16); });
    var trace = {
      type: "funnel",
      name: site.site,
      y: lines.map(function (l) { return l.map(plotlyText).join("<br>"); }),
      // Hidden steps are drawn as empty bars labelled "<10": the bar length never encodes a hidden number.
      x: bars.map(function (bar) { return bar.count.hidden ? 0 : bar.count.value; }),
      text: bars.map(function (bar) {
        var percent = bar.percent && !bar.percent.hidden && bar.percent.display ? " (" + bar.percent.display + ")" : "";
        return plotlyText(bar.count.display + percent);
      }),
      customdata: bars.map(function (bar) { return plotlyText(bar.name); }),
      textinfo: "text",
      textposition: "inside",
      hovertemplate: "%{customdata}<br>" + plotlyText(countLabel) + ": %{text}<extra>" + plotlyText(site.source) + "</extra>"
    };
    window.Plotly.react(chart, [trace], {
      margin: { l: 20, r: 20, t: 10, b: 20 },
      height: 40 + rowHeight.reduce(function (a, b) { return a + b; }, 0),
      yaxis: { automargin: true, tickfont: { size: 12 } },
      showlegend: false
    }, { displaylogo: false, responsive: true });
  }

  var attritionPicker = document.getElementById("attrition-site");
  if (attritionPicker) {
    attritionPicker.addEventListener("change", function () {
      if (attritionResult) {
        renderAttrition(attritionResult);
      }
    });
  }
  document.querySelectorAll("input[name=attrition-mode]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (attritionResult) {
        renderAttrition(attritionResult);
      }
    });
  });
  var lastDrawn = null;

  function render(result) {
    renderSites(result);
    renderWithheld(result);
    // Charts are redrawn only when the set of answered sites changes, not on every poll.
    var signature = answered(result).map(function (s) { return s.run; }).join(",");
    if (signature && signature !== lastDrawn) {
      lastDrawn = signature;
      renderAttrition(result);
      if (window.SoyangCharacterization) {
        window.SoyangCharacterization.render(result);
      }
    }
  }

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 404 || response.status === 403) {
          throw new Error("gone");
        }
        if (!response.ok) {
          throw new Error("retry");
        }
        return response.json();
      })
      .then(function (result) {
        render(result);
        if (!result.finished) {
          window.setTimeout(poll, POLL_MS);
        }
      })
      .catch(function (error) {
        if (error.message !== "gone") {
          window.setTimeout(poll, RETRY_MS);
        }
      });
  }

  var cancelForm = document.getElementById("cancel-form");
  if (cancelForm) {
    cancelForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(cancelForm);
      fetch(cancelForm.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": data.get("csrfmiddlewaretoken") }
      })
        .then(function (response) { return response.json(); })
        .then(render)
        .catch(function () { cancelForm.submit(); });
    });
  }

  poll();
})();
