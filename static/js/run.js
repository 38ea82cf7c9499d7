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

  // Django's JavaScript catalogue (/jsi18n/, loaded before this file) translates; without it, English.
  const _ = window.gettext || ((s) => s);
  const interpolate = window.interpolate || ((fmt, args, named) => {
    let i = 0;
    return named ? fmt.replace(/%\((\w+)\)s/g, (m, key) => String(args[key])) : fmt.replace(/%s/g, () => String(args[i++]));
  });

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

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function table(headers, rows, numericColumn) {
    var t = el("table", null, "grid");
    var head = t.createTHead().insertRow();
    headers.forEach(function (h) {
      head.appendChild(el("th", h));
    });
    var body = t.createTBody();
    if (!rows.length) {
      var empty = body.insertRow().insertCell();
      empty.colSpan = headers.length;
      empty.textContent = _("Nothing to show.");
    }
    rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (cell, i) {
        var td = tr.insertCell();
        td.textContent = cell === null || cell === undefined ? "" : String(cell);
        if (i === numericColumn) {
          td.className = "num";
        }
      });
    });
    return t;
  }

  function replace(container, node) {
    while (container.firstChild) {
      container.removeChild(container.firstChild);
    }
    if (node) {
      container.appendChild(node);
    }
  }

  function progressText(site) {
    var p = site.progress || {};
    if (site.state === "running" && p.total) {
      return (p.label || _("Running")) + " (" + p.step + "/" + p.total + ")";
    }
    return p.label || "";
  }

  function renderSites(result) {
    root.querySelector("[data-field=state]").textContent = result.state + (result.cancelled ? " (" + _("cancelled") + ")" : "");
    var body = root.querySelector("#sites tbody");
    replace(body, null);
    result.sites.forEach(function (site) {
      var tr = body.insertRow();
      tr.className = "state-" + site.state;
      [
        site.site + " (" + site.source + ")",
        site.state,
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
      if (result.merged_breakdown_withheld) {
        lines.push(_("No breakdown of all sites together: a site's count is under its threshold."));
      }
    }
    replace(holder, null);
    lines.forEach(function (line) {
      holder.appendChild(el("p", line, "meaning"));
    });
  }

  function renderAttrition(result) {
    var sites = withBreakdown(result);
    var section = document.getElementById("attrition");
    // A plain count shows the numbers only; attrition and demographics requests show the funnel too.
    if (!sites.length || result.kind === "count") {
      return;
    }
    section.hidden = false;
    var rows = [];
    var traces = sites.map(function (site) {
      var steps = site.attrition || [];
      steps.forEach(function (step, i) {
        rows.push([site.source, i + 1, step.name, step.display, site.privacy.short || site.privacy.description]);
      });
      var names = steps.map(function (s, i) { return (i + 1) + ". " + s.name; });
      return {
        type: "funnel",
        name: site.site,
        y: names,
        // Hidden steps are drawn as empty bars labelled "<10": the bar length never encodes a hidden number.
        x: steps.map(function (s) { return s.hidden ? 0 : s.value; }),
        text: steps.map(function (s) { return s.display; }),
        textinfo: "text",
        hovertemplate: "%{y}: %{text}<extra>" + site.source + "</extra>"
      };
    });
    var chart = document.getElementById("attrition-chart");
    if (window.Plotly && traces.some(function (t) { return t.y.length; })) {
      window.Plotly.react(chart, traces, { margin: { l: 260, r: 20, t: 10, b: 30 }, height: 120 + 50 * traces[0].y.length },
        { displaylogo: false, responsive: true });
    } else if (!traces.some(function (t) { return t.y.length; })) {
      replace(chart, el("p", _("This definition has no rules: every person with an entry event is in the cohort."), "hint"));
    }
    replace(section.querySelector("[data-table=attrition]"), table([_("Site"), _("Step"), _("Rule"), _("Persons"), _("Privacy rule")], rows, 3));
    section.querySelector("[data-csv=attrition]").href = csvUrl("attrition");
  }

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
