/* The characterization of a cohort on its run page (templates/cohorts/_characterization.html): its demographics at
 * the index date and its most frequent conditions, drugs, procedures and measurements in the year before index,
 * each beside the site's whole population, merged across sites or per site (the "Show" selector).
 *
 * static/js/run.js polls the request and calls `SoyangCharacterization.render(result)` when the answered sites
 * change. Every number comes protected by the server (cohorts/runs/selectors.py): counts as {value, display,
 * hidden}, and the percentages and standardized differences the server computed from released counts only
 * (`percent`, `population_percent`, `smd`; null where a count they need is hidden). This file displays them and
 * computes nothing: a hidden count shows its text ("<10") and no percentage. Breakdowns list fixed categories in
 * a fixed order; top concepts only those whose count is shown. Results stored before the population was computed
 * have no population figures: their columns read "—". Text from the server is set with textContent, never as HTML.
 */
(function () {
  "use strict";

  const { _, interpolate, el, replace } = window.Soyang;

  var section = document.getElementById("demographics");
  var root = document.getElementById("run");
  if (!section || !root) {
    window.SoyangCharacterization = { render: function () {} };
    return;
  }

  var MALE = 8507;
  // The bucket of every sex, race and ethnicity the fixed lists do not name (cohorts/runs/breakdowns.py).
  var OTHER = 0;
  var NOT_SHOWN = "—";
  var CONCEPT = [["concept_id", _("Concept ID")], ["name", _("Name")]];
  /* Each table: its title, its label columns, and whether it has the population beside it. */
  var TABLES = {
    age_pyramid: { title: _("Age group by sex"), columns: [["age_group", _("Age")], ["gender", _("Sex")]], compared: true },
    gender: { title: _("Sex"), columns: [["name", _("Sex")]], compared: true },
    race: { title: _("Race"), columns: [["name", _("Race")]] },
    ethnicity: { title: _("Ethnicity"), columns: [["name", _("Ethnicity")]] },
    index_year: { title: _("Year of index date"), columns: [["year", _("Year")]] },
    top_conditions: { title: _("Conditions"), columns: CONCEPT, top: "conditions", compared: true },
    top_drugs: { title: _("Drugs"), columns: CONCEPT, top: "drugs", compared: true },
    top_procedures: { title: _("Procedures"), columns: CONCEPT, top: "procedures", compared: true },
    top_measurements: { title: _("Measurements"), columns: CONCEPT, top: "measurements", compared: true }
  };

  function csvUrl(name) {
    return root.dataset.csvUrl.replace("TABLE", name);
  }

  /* A table of `headers` ([text, numeric?]) and rows of cells (text, or {text, title}). */
  function table(headers, rows) {
    var t = el("table", null, "grid compact");
    var head = t.createTHead().insertRow();
    headers.forEach(function (h) {
      var th = el("th", h[0], h[1] ? "num" : "");
      th.scope = "col";
      head.appendChild(th);
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
        var text = cell !== null && typeof cell === "object" ? cell.text : cell;
        td.textContent = text === null || text === undefined ? "" : String(text);
        if (cell !== null && typeof cell === "object" && cell.title) {
          td.title = cell.title;
        }
        if (headers[i][1]) {
          td.className = "num";
        }
      });
    });
    return t;
  }

  function percent(value) {
    return value === null || value === undefined ? NOT_SHOWN : value.toFixed(1) + "%";
  }

  function difference(value) {
    if (value === null || value === undefined) {
      return NOT_SHOWN;
    }
    return (value > 0 ? "+" : "") + value.toFixed(2);
  }

  // The fixed sexes and the "other or unknown" bucket are the portal's own labels (cohorts/runs/breakdowns.py):
  // translated like the page's text.
  function sex(conceptId) {
    return conceptId === OTHER ? _("Other or unknown") : conceptId === MALE ? _("Male") : _("Female");
  }

  // The fixed races and ethnicities (cohorts/runs/breakdowns.py), translated; any other name as the server gave it.
  var FIXED = {
    8527: _("White"),
    8516: _("Black or African American"),
    8515: _("Asian"),
    38003563: _("Hispanic or Latino"),
    38003564: _("Not Hispanic or Latino")
  };
  FIXED[OTHER] = _("Other or unknown");

  function rowsOf(site, name) {
    var spec = TABLES[name];
    var demo = site.demographics || {};
    var cells = spec.top ? (demo.top_at_index || {})[spec.top] || [] : demo[name] || [];
    return cells.map(function (cell) {
      var labels = spec.columns.map(function (c) {
        if (spec.top) {
          return cell[c[0]];
        }
        if (name === "gender") {
          return sex(cell.concept_id);
        }
        if (c[0] === "gender") {
          return sex(cell.gender_concept_id);
        }
        return c[0] === "name" && FIXED[cell.concept_id] ? FIXED[cell.concept_id] : cell[c[0]];
      });
      var figures = [cell.persons.display, percent(cell.percent)];
      if (spec.compared) {
        var population = cell.population;
        // Without a percentage, the population's count says why ("<10", "120 + <10"); the cell's title gives
        // the count in any case.
        var share = population && (cell.population_percent === null || cell.population_percent === undefined) ?
          population.display : percent(cell.population_percent);
        figures.push(
          population ? { text: share, title: interpolate(_("%(persons)s persons of the site population"), { persons: population.display }, true) } : NOT_SHOWN,
          difference(cell.smd)
        );
      }
      return labels.concat(figures);
    });
  }

  function headersOf(name, withSite) {
    var spec = TABLES[name];
    var headers = withSite ? [[_("Site"), false]] : [];
    spec.columns.forEach(function (c) {
      headers.push([c[1], false]);
    });
    headers.push([_("Persons"), true], [_("% of cohort"), true]);
    if (spec.compared) {
      headers.push([_("% of population"), true], [_("Std. diff."), true]);
    }
    return headers;
  }

  function drawTable(name, sites) {
    var holder = section.querySelector("[data-table=" + name + "]");
    if (!holder) {
      return;
    }
    var withSite = sites.length > 1;
    var rows = [];
    sites.forEach(function (site) {
      rowsOf(site, name).forEach(function (row) {
        rows.push(withSite ? [site.source].concat(row) : row);
      });
    });
    replace(holder, table(headersOf(name, withSite), rows));
    var title = section.querySelector("[data-title=" + name + "]");
    if (title) {
      title.textContent = TABLES[name].title;
    }
    var link = section.querySelector("[data-csv=" + name + "]");
    if (link) {
      link.href = csvUrl(name);
    }
  }

  function drawPyramid(sites) {
    var container = document.getElementById("pyramid-chart");
    if (!window.Plotly) {
      replace(container, el("p", _("The chart library did not load; the table below holds the same numbers."), "hint"));
      return;
    }
    replace(container, null);
    sites.forEach(function (site) {
      var cells = (site.demographics || {}).age_pyramid || [];
      var byGender = {};
      // Every age band is listed, in the server's order (youngest first): the axis keeps that order.
      var bands = [];
      cells.forEach(function (cell) {
        if (bands.indexOf(cell.age_group) < 0) {
          bands.push(cell.age_group);
        }
        var g = sex(cell.gender_concept_id);
        if (!byGender[g]) {
          byGender[g] = { male: cell.gender_concept_id === MALE, y: [], x: [], text: [] };
        }
        // A hidden bucket is drawn as an empty bar labelled with its text; a merged bucket with a hidden site at
        // what the shown sites add up to (its lower bound): the bar never encodes a hidden number.
        var value = cell.persons.value !== null && cell.persons.value !== undefined ? cell.persons.value :
          (cell.persons.lower_bound || 0);
        byGender[g].y.push(cell.age_group);
        byGender[g].x.push(byGender[g].male ? -value : value);
        byGender[g].text.push(cell.persons.display);
      });
      var traces = Object.keys(byGender).map(function (g) {
        var t = byGender[g];
        return { type: "bar", orientation: "h", name: g, y: t.y, x: t.x, text: t.text, textposition: "auto",
          hovertemplate: g + " %{y}: %{text}<extra></extra>" };
      });
      var div = el("div", null, "chart-item");
      if (sites.length > 1) {
        container.appendChild(el("h4", site.site));
      }
      container.appendChild(div);
      window.Plotly.react(div, traces, {
        barmode: "relative",
        bargap: 0.1,
        margin: { l: 50, r: 10, t: 30, b: 40 },
        height: 340,
        legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
        xaxis: { title: { text: _("persons (men to the left)") }, tickformat: "d" },
        yaxis: { type: "category", categoryorder: "array", categoryarray: bands }
      }, { displaylogo: false, responsive: true });
    });
  }

  /* One sentence per section: the threshold rule of the view's sites, said once rather than in every row. */
  function drawRules(sites) {
    var rules = sites.map(function (site) {
      return (sites.length > 1 ? site.source + ": " : "") + site.privacy.description;
    }).join("; ");
    var text = _("Counts under the threshold are hidden: a hidden count has no percentage and no difference.") + " " +
      interpolate(_("Privacy rule: %(rule)s."), { rule: rules }, true);
    section.querySelectorAll("[data-field=rule]").forEach(function (node) {
      node.textContent = text;
    });
  }

  function drawWindow(sites) {
    var demo = sites[0].demographics || {};
    var days = demo.index_lookback_days || 30;
    var population = demo.population;
    section.querySelectorAll("[data-field=window]").forEach(function (node) {
      node.textContent = interpolate(_("Persons with at least one record of the concept in the %(days)s days up to and including their index date."), { days: days }, true);
    });
    // Results stored before the characterization listed the 30 days before index: their titles say so.
    if (days !== 365) {
      section.querySelectorAll("[data-field=window-title]").forEach(function (node) {
        node.textContent = interpolate(_("most frequent in the %(days)s days before index"), { days: days }, true);
      });
    }
    var note = section.querySelector("[data-field=population]");
    if (note) {
      note.textContent = population ?
        interpolate(_("Site population: %(persons)s persons with an observation period."), { persons: population.persons.display }, true) :
        _("This result was computed before the sites described their population: run the characterization again to compare.");
    }
    var heading = section.querySelector("[data-field=view-title]");
    if (heading) {
      heading.textContent = sites.length > 1 ? _("Each site") : sites[0].site;
    }
  }

  /* What the section can show: with 2+ sites, "All sites (merged)" first (the server's merged numbers, already
   * protected; absent when the merged total is hidden), then every site side by side, then each site alone. */
  function views(result, sites) {
    var out = [];
    var merged = result.merged_demographics;
    if (merged && sites.length > 1) {
      out.push({ id: "merged", label: _("All sites (merged)"),
        sites: [{ site: _("All sites (merged)"), source: _("all sites"), demographics: merged,
          privacy: { description: merged.privacy.description + " " + _("(strictest of the sites' rules)") } }] });
    }
    out.push({ id: "each", label: _("Each site"), sites: sites });
    if (sites.length > 1) {
      sites.forEach(function (site) {
        out.push({ id: "site-" + site.source, label: site.site + " (" + site.source + ")", sites: [site] });
      });
    }
    return out;
  }

  var current = null;
  var userChose = false;

  function render(result) {
    var sites = result.sites.filter(function (site) {
      return site.persons && !site.breakdown_withheld && site.demographics;
    });
    if (!sites.length) {
      return;
    }
    current = result;
    section.hidden = false;
    var choices = views(result, sites);
    var picker = document.getElementById("demographics-site");
    var chosen = picker.value;
    replace(picker, null);
    choices.forEach(function (view) {
      var option = el("option", view.label);
      option.value = view.id;
      picker.appendChild(option);
    });
    // The reader's own choice stays while sites answer; until they make one, the first view (merged, once two
    // sites have answered) is shown.
    if (userChose && choices.some(function (view) { return view.id === chosen; })) {
      picker.value = chosen;
    }
    picker.closest("[data-field=demographics-site]").hidden = choices.length < 2;
    var view = choices.filter(function (v) { return v.id === picker.value; })[0] || choices[0];
    // Several sites side by side need wider tables: the demographics then take two columns, not three.
    section.classList.toggle("char-many", view.sites.length > 1);
    drawWindow(view.sites);
    drawRules(view.sites);
    drawPyramid(view.sites);
    Object.keys(TABLES).forEach(function (name) {
      drawTable(name, view.sites);
    });
  }

  document.getElementById("demographics-site").addEventListener("change", function () {
    userChose = true;
    if (current) {
      render(current);
    }
  });

  window.SoyangCharacterization = { render: render };
})();
