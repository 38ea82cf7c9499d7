/* The cohort builder (cohorts/builder.html): edits a Circe cohort expression held here as plain JSON.
 *
 * Why it edits the JSON in place instead of a model of its own: whatever the blocks do not show (type concepts,
 * nested correlated criteria, additional criteria, ...) stays in the document exactly as imported, so saving an
 * ATLAS definition without touching it gives the same expression back. A control only sets or deletes the keys
 * it shows. The server says what everything means (describe.json: one sentence per block, the fragments not
 * shown, validation errors with their JSON path) and validates every save; this file never decides validity.
 *
 * No inline script (strict CSP): configuration comes from the json_script "builder-config". Text from the server
 * or the user is always set with textContent.
 */
(function () {
  "use strict";

  // Django's JavaScript catalogue (/jsi18n/, loaded before this file) translates; without it, English.
  const _ = window.gettext || ((s) => s);
  const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));
  const interpolate = window.interpolate || ((fmt, args, named) => {
    let i = 0;
    return named ? fmt.replace(/%\((\w+)\)s/g, (m, key) => String(args[key])) : fmt.replace(/%s/g, () => String(args[i++]));
  });

  var form = document.getElementById("builder");
  var configNode = document.getElementById("builder-config");
  if (!form || !configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var expr = config.expression;
  var definition = config.definition;
  var urls = config.urls;
  var sources = config.sources || [];
  // What was last saved (or, for a new definition, what the page started from): the page has unsaved edits while
  // the expression or the name block differs from it. Counting a draft does not change it; saving or discarding does.
  var savedJson = JSON.stringify(expr);
  var savedDetails = null;  // set once the name block is filled in (below)
  var leaving = false;      // the user already agreed to leave: the browser's own question is not asked again
  var lastDescription = config.initial;
  var lastValid = null;
  var searchState = {};
  // The pause after an edit before the draft is described (and, with auto-count on, counted): long enough not to
  // count every keystroke, short enough to feel live.
  var DESCRIBE_MS = 400;
  // The status request waits on the server until the count has finished (at most this long), so the number comes
  // as soon as the worker is done, without polling every few milliseconds.
  var WAIT_SECONDS = 2;
  var RETRY_MS = 3000;
  var AUTO_COUNT_KEY = "soyang.builder.auto-count." + (config.user || "");

  var MALE = 8507;
  var FEMALE = 8532;
  // The table of domains is the server's (cohorts/expression/domains.py), served in builder-config: for each
  // domain its label, whether the menu offers it, and where its criteria keep First, the concept set, the value,
  // the age and the start date range. A domain the table does not know is shown with the common attributes.
  var DOMAINS = {};
  config.domains.forEach(function (domain) {
    DOMAINS[domain.key] = domain;
  });
  var OTHER_DOMAIN = { first: true, codeset: true, value: false, age: "Age", start_dates: "OccurrenceStartDate" };

  function domainFacts(name) {
    return DOMAINS[name] || OTHER_DOMAIN;
  }
  var NUMBER_OPS = [["", _("any")], ["gt", _("above")], ["gte", _("at least")], ["lt", _("below")], ["lte", _("at most")],
    ["eq", _("equal to")], ["bt", _("between")]];
  var LIMITS = [["First", _("the earliest event per person")], ["All", _("all events")], ["Last", _("the latest event per person")]];

  // --- small DOM helpers --------------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function region(name) {
    return form.querySelector("[data-region=" + name + "]");
  }

  function labelled(id, label, control, inline) {
    var wrap = el("div", inline ? "builder-field builder-inline" : "builder-field");
    var lab = el("label", null, label);
    lab.htmlFor = id;
    control.id = id;
    wrap.appendChild(lab);
    wrap.appendChild(control);
    return wrap;
  }

  // mode: "value" (default: the document changed, the layout did not), "structural" (re-render: fields appear or
  // disappear) or "ui" (page state only, the document is untouched). Re-rendering only when the layout changes
  // keeps the control under the pointer in place, so a click that blurs a field still lands.
  function touched(mode) {
    if (mode === "structural") {
      changed();
    } else if (mode !== "ui") {
      valueChanged();
    }
  }

  function numberField(id, label, value, onSet, min, mode) {
    var input = el("input");
    input.type = "number";
    input.step = "any";
    if (min !== undefined) {
      input.min = String(min);
    }
    input.value = value === null || value === undefined ? "" : String(value);
    input.addEventListener("change", function () {
      onSet(input.value === "" ? null : Number(input.value));
      touched(mode);
    });
    return labelled(id, label, input, true);
  }

  function textField(id, label, value, onSet, type, mode) {
    var input = el("input");
    input.type = type || "text";
    input.value = value || "";
    input.addEventListener("change", function () {
      onSet(input.value);
      touched(mode);
    });
    return labelled(id, label, input, true);
  }

  function selectField(id, label, options, value, onSet, mode) {
    var select = el("select");
    options.forEach(function (option) {
      var node = el("option", null, option[1]);
      node.value = String(option[0]);
      select.appendChild(node);
    });
    select.value = value === null || value === undefined ? "" : String(value);
    select.addEventListener("change", function () {
      onSet(select.value);
      touched(mode);
    });
    return labelled(id, label, select, true);
  }

  function checkField(id, label, checked, onSet, mode) {
    var wrap = el("div", "builder-field builder-inline builder-check");
    var input = el("input");
    input.type = "checkbox";
    input.id = id;
    input.checked = Boolean(checked);
    input.addEventListener("change", function () {
      onSet(input.checked);
      touched(mode);
    });
    var lab = el("label", null, label);
    lab.htmlFor = id;
    wrap.appendChild(input);
    wrap.appendChild(lab);
    return wrap;
  }

  function button(text, onClick, className, id) {
    var node = el("button", className || "builder-small", text);
    node.type = "button";
    if (id) {
      node.id = id;
    }
    node.addEventListener("click", function () {
      onClick();
      changed();
    });
    return node;
  }

  function setOrDelete(object, key, value) {
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) {
      delete object[key];
    } else {
      object[key] = value;
    }
  }

  function domainOf(criterion) {
    return Object.keys(criterion || {})[0] || "ConditionOccurrence";
  }

  function firstSetId() {
    var sets = expr.ConceptSets || [];
    return sets.length ? sets[0].id : null;
  }

  // --- blocks ---------------------------------------------------------------------------------------------------

  function setLabel(set) {
    return (set.name || _("concept set")) + " (#" + set.id + ")";
  }

  function setOptions() {
    return [["", _("any concept")]].concat((expr.ConceptSets || []).map(function (set) {
      return [set.id, setLabel(set)];
    }));
  }

  function setSelect(id, label, value, onSet) {
    var field = selectField(id, label, setOptions(), value, onSet);
    field.querySelector("select").dataset.sets = "1";
    return field;
  }

  function refreshSetLabels() {
    // A renamed set is renamed in every concept set menu without re-rendering (the user may be mid-click).
    form.querySelectorAll("select[data-sets] option").forEach(function (option) {
      (expr.ConceptSets || []).forEach(function (set) {
        if (String(set.id) === option.value) {
          option.textContent = setLabel(set);
        }
      });
    });
  }

  function rangeEditor(id, label, holder, key, type) {
    // A Circe range {Op, Value, Extent}: an empty operator removes the key.
    var range = holder[key] || {};
    var box = el("div", "builder-range");
    box.appendChild(selectField(id + "-op", label, NUMBER_OPS, range.Op || "", function (op) {
      if (!op) {
        delete holder[key];
        return;
      }
      holder[key] = holder[key] || {};
      holder[key].Op = op;
      if (op !== "bt" && op !== "!bt") {
        delete holder[key].Extent;
      }
    }, "structural"));
    if (range.Op) {
      var make = type === "date" ? function (fid, flabel, value, onSet) { return textField(fid, flabel, value, onSet, "date"); } : numberField;
      box.appendChild(make(id + "-value", interpolate(_("%s: value"), [label]), range.Value, function (v) { setOrDelete(holder[key], "Value", v); }));
      if (range.Op === "bt" || range.Op === "!bt") {
        box.appendChild(make(id + "-extent", interpolate(_("%s: and"), [label]), range.Extent, function (v) { setOrDelete(holder[key], "Extent", v); }));
      }
    }
    return box;
  }

  function genderEditor(id, holder) {
    var chosen = (holder.Gender || []).map(function (g) { return g.CONCEPT_ID; });
    var box = el("div", "builder-range");
    [[MALE, "male"], [FEMALE, "female"]].forEach(function (pair) {
      box.appendChild(checkField(id + "-" + pair[1], interpolate(_("Gender: %s"), [_(pair[1])]), chosen.indexOf(pair[0]) !== -1, function (on) {
        var list = (holder.Gender || []).filter(function (g) { return g.CONCEPT_ID !== pair[0]; });
        if (on) {
          list.push({ CONCEPT_ID: pair[0], CONCEPT_NAME: pair[1].toUpperCase() });
        }
        setOrDelete(holder, "Gender", list);
      }));
    });
    return box;
  }

  function criterionEditor(criterion, id) {
    // criterion: {Domain: {attributes}}; changing the domain keeps the concept set (and First where it exists).
    var domain = domainOf(criterion);
    var attrs = criterion[domain] || {};
    var box = el("div", "builder-criterion");
    var row = el("div", "builder-row");
    var domains = config.domains.filter(function (d) { return d.offered; }).map(function (d) { return [d.key, d.label]; });
    if (!domains.some(function (d) { return d[0] === domain; })) {
      domains.unshift([domain, domain]);  // a domain the builder does not offer is shown as it is, not replaced
    }
    var facts = domainFacts(domain);
    row.appendChild(selectField(id + "-domain", _("Domain"), domains, domain, function (value) {
      if (value === domain) {
        return;
      }
      var moved = { CodesetId: attrs.CodesetId };
      if (attrs.First && domainFacts(value).first) {
        moved.First = true;
      }
      if (moved.CodesetId === undefined || moved.CodesetId === null) {
        delete moved.CodesetId;
      }
      delete criterion[domain];
      criterion[value] = moved;
    }, "structural"));
    if (facts.codeset) {
      row.appendChild(setSelect(id + "-set", _("Concept set"), attrs.CodesetId, function (value) {
        setOrDelete(attrs, "CodesetId", value === "" ? null : Number(value));
      }));
    }
    if (facts.first) {
      row.appendChild(checkField(id + "-first", _("First occurrence in the person's history"), attrs.First, function (on) {
        setOrDelete(attrs, "First", on || null);
      }));
    }
    box.appendChild(row);
    var filters = el("div", "builder-row");
    filters.appendChild(rangeEditor(id + "-age", _("Age"), attrs, facts.age, "number"));
    filters.appendChild(genderEditor(id + "-gender", attrs));
    if (facts.value) {
      filters.appendChild(rangeEditor(id + "-value", _("Value as number"), attrs, "ValueAsNumber", "number"));
    }
    filters.appendChild(rangeEditor(id + "-start", _("Start date"), attrs, facts.start_dates, "date"));
    box.appendChild(filters);
    return box;
  }

  function itemRow(set, item, index, id) {
    var concept = item.concept || {};
    var tr = el("tr");
    tr.appendChild(el("td", "num", concept.CONCEPT_ID));
    tr.appendChild(el("td", null, concept.CONCEPT_NAME || ""));
    tr.appendChild(el("td", null, [concept.DOMAIN_ID, concept.VOCABULARY_ID].filter(Boolean).join(" · ")));
    [["includeDescendants", _("descendants")], ["includeMapped", _("mapped")], ["isExcluded", _("exclude")]].forEach(function (pair) {
      var td = el("td");
      td.appendChild(checkField(id + "-" + pair[0], pair[1] + " (" + concept.CONCEPT_ID + ")", item[pair[0]], function (on) {
        item[pair[0]] = on;
      }));
      tr.appendChild(td);
    });
    var td = el("td");
    td.appendChild(button(_("Remove"), function () {
      set.expression.items.splice(index, 1);
    }, "builder-small", id + "-remove"));
    tr.appendChild(td);
    return tr;
  }

  function addConcept(set, concept) {
    set.expression = set.expression || {};
    set.expression.items = set.expression.items || [];
    var exists = set.expression.items.some(function (item) { return item.concept && item.concept.CONCEPT_ID === concept.CONCEPT_ID; });
    if (!exists) {
      set.expression.items.push({ concept: concept, isExcluded: false, includeDescendants: true, includeMapped: false });
    }
  }

  function fromSearch(hit) {
    // The search answers in the vocabulary's column names; ATLAS keeps concepts in upper case.
    return {
      CONCEPT_ID: hit.concept_id, CONCEPT_NAME: hit.concept_name, DOMAIN_ID: hit.domain_id,
      VOCABULARY_ID: hit.vocabulary_id, CONCEPT_CLASS_ID: hit.concept_class_id,
      STANDARD_CONCEPT: hit.standard_concept || null, CONCEPT_CODE: hit.concept_code,
      INVALID_REASON: hit.invalid_reason || null
    };
  }

  // A hit's 'Maps to' links and its released counts per site, in the words the server gave them (search.json:
  // the same payload and count texts as the Concepts page, so nothing is decided here).
  function hitDetails(hit) {
    var nodes = [];
    (hit.maps_to || []).forEach(function (other) {
      nodes.push(el("span", "concepts-mapping", hit.vocabulary_id + " " + hit.concept_code + " → " + other.concept_id + " " + other.concept_name));
    });
    (hit.mapped_from || []).forEach(function (other) {
      var mapping = el("span", "concepts-mapping", other.vocabulary_id + " " + other.concept_code + " → " + hit.concept_id + " " + hit.concept_name);
      mapping.title = other.concept_name;
      nodes.push(mapping);
    });
    var counts = (hit.counts || []).map(function (count) {
      var numbers = count.records !== null && count.records !== undefined;
      var text = numbers ? count.records_text + " / " + count.persons_text : count.records_text;
      var part = el("span", numbers && !count.hidden ? null : "concepts-count-hidden", count.source_name + ": " + text);
      part.title = count.rule;
      return part;
    });
    if (counts.length) {
      var line = el("span", "builder-hit-counts concepts-mapping");
      counts.forEach(function (part, k) {
        if (k) {
          line.appendChild(document.createTextNode(" · "));
        }
        line.appendChild(part);
      });
      nodes.push(line);
    }
    return nodes;
  }

  function search(setIndex) {
    var state = searchState[setIndex];
    var query = "?q=" + encodeURIComponent(state.q || "") + "&domain=" + encodeURIComponent(state.domain || "") +
      "&standard=any&limit=25";
    state.message = _("Searching…");
    render();
    fetch(urls.search + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        state.results = data.results || [];
        state.legend = data.count_legend || "";
        state.message = state.results.length ? "" : _("No concept found.");
        render();
      })
      .catch(function () {
        state.results = [];
        state.message = _("Vocabulary search unavailable: add concepts by their id.");
        render();
      });
  }

  function loadSavedSet(set, pk) {
    fetch(urls.concept_set.replace(/0\.json$/, encodeURIComponent(pk) + ".json"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (saved) {
        ((saved.expression || {}).items || []).forEach(function (item) {
          set.expression = set.expression || {};
          set.expression.items = set.expression.items || [];
          set.expression.items.push(item);
        });
        if (!set.name && saved.name) {
          set.name = saved.name;
        }
        changed();
      })
      .catch(function () {
        showErrors([{ block: "concept-sets", path: "", message: interpolate(_("Saved concept set %s could not be loaded."), [pk]) }]);
      });
  }

  function renderConceptSets() {
    var container = region("concept-sets");
    clear(container);
    (expr.ConceptSets || []).forEach(function (set, i) {
      var id = "cs" + i;
      var box = el("fieldset", "builder-set");
      box.dataset.block = "concept-set-" + i;
      box.appendChild(el("legend", null, interpolate(_("Concept set #%s"), [set.id])));
      var head = el("div", "builder-row");
      head.appendChild(textField(id + "-name", _("Name"), set.name, function (v) {
        set.name = v;
        refreshSetLabels();
      }));
      head.appendChild(button(_("Remove concept set"), function () {
        expr.ConceptSets.splice(i, 1);
        searchState = {};  // search results are kept per position; positions just moved
      }, "builder-small", id + "-drop"));
      box.appendChild(head);
      var items = (set.expression || {}).items || [];
      if (items.length) {
        var table = el("table", "grid builder-items");
        var hr = table.createTHead().insertRow();
        [_("Concept"), _("Name"), _("Domain · vocabulary"), _("Descendants"), _("Mapped"), _("Exclude"), ""].forEach(function (h) { hr.appendChild(el("th", null, h)); });
        var body = table.createTBody();
        items.forEach(function (item, j) { body.appendChild(itemRow(set, item, j, id + "-i" + j)); });
        box.appendChild(table);
      }
      var state = searchState[i] = searchState[i] || { q: "", domain: "", results: [], message: "" };
      var finder = el("div", "builder-row builder-search");
      var queryField = textField(id + "-q", _("Search the vocabulary"), state.q, function (v) { state.q = v; }, "search", "ui");
      queryField.querySelector("input").addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();
          state.q = event.target.value;
          search(i);
        }
      });
      finder.appendChild(queryField);
      finder.appendChild(selectField(id + "-qdomain", _("Domain"), [["", _("any")], ["Condition", _("Condition")], ["Drug", _("Drug")],
        ["Measurement", _("Measurement")], ["Procedure", _("Procedure")], ["Observation", _("Observation")], ["Device", _("Device")], ["Visit", _("Visit")]],
        state.domain, function (v) { state.domain = v; }, "ui"));
      var go = el("button", "builder-small", _("Search"));
      go.type = "button";
      go.id = id + "-go";
      go.addEventListener("click", function () { search(i); });
      finder.appendChild(go);
      var byId = el("input");
      byId.type = "number";
      byId.min = "1";
      var addWrap = labelled(id + "-byid", _("Concept id"), byId, true);
      finder.appendChild(addWrap);
      var add = el("button", "builder-small", _("Add by id"));
      add.type = "button";
      add.id = id + "-add";
      add.addEventListener("click", function () {
        var value = parseInt(byId.value, 10);
        if (value > 0) {
          addConcept(set, { CONCEPT_ID: value });
          changed();
        }
      });
      finder.appendChild(add);
      var saved = el("input");
      saved.type = "number";
      saved.min = "1";
      finder.appendChild(labelled(id + "-saved", _("Saved set #"), saved, true));
      var load = el("button", "builder-small", _("Load"));
      load.type = "button";
      load.id = id + "-load";
      load.addEventListener("click", function () {
        if (parseInt(saved.value, 10) > 0) {
          loadSavedSet(set, parseInt(saved.value, 10));
        }
      });
      finder.appendChild(load);
      box.appendChild(finder);
      if (state.message) {
        box.appendChild(el("p", "hint", state.message));
      }
      if (state.results.length) {
        var list = el("ul", "builder-results");
        state.results.forEach(function (hit, k) {
          var li = el("li");
          var addHit = button(_("Add"), function () { addConcept(set, fromSearch(hit)); }, "builder-small", id + "-hit" + k);
          addHit.setAttribute("aria-label", interpolate(_("Add %s (%s)"), [hit.concept_name, hit.concept_id]));
          li.appendChild(addHit);
          li.appendChild(el("span", null, " " + hit.concept_name + " (" + hit.concept_id + ") · " + hit.domain_id + " · " +
            hit.vocabulary_id + " " + hit.concept_code + (hit.standard_concept === "S" ? " · " + _("standard") : "")));
          hitDetails(hit).forEach(function (node) { li.appendChild(node); });
          list.appendChild(li);
        });
        box.appendChild(list);
        if (state.legend && (state.results[0].counts || []).length) {
          box.appendChild(el("p", "hint concepts-legend", state.legend));
        }
      }
      var sentence = el("p", "builder-sentence");
      sentence.dataset.sentence = "concept-set-" + i;
      box.appendChild(sentence);
      var errors = el("ul", "builder-errors");
      errors.dataset.errors = "concept-set-" + i;
      box.appendChild(errors);
      var setWarnings = el("ul", "builder-warnings");
      setWarnings.dataset.warnings = "concept-set-" + i;
      box.appendChild(setWarnings);
      container.appendChild(box);
    });
    container.appendChild(button(_("Add a concept set"), function () {
      expr.ConceptSets = expr.ConceptSets || [];
      var next = expr.ConceptSets.reduce(function (max, set) { return Math.max(max, set.id); }, -1) + 1;
      expr.ConceptSets.push({ id: next, name: interpolate(_("Concept set %s"), [next + 1]), expression: { items: [] } });
    }, "builder-add", "cs-new"));
  }

  function renderEntry() {
    var container = region("entry");
    clear(container);
    var primary = expr.PrimaryCriteria || {};
    (primary.CriteriaList || []).forEach(function (criterion, i) {
      var box = el("div", "builder-item");
      box.appendChild(el("h3", null, i === 0 ? _("Entry event") : _("…or entry event")));
      box.appendChild(criterionEditor(criterion, "entry" + i));
      box.appendChild(button(_("Remove entry event"), function () { primary.CriteriaList.splice(i, 1); }, "builder-small", "entry" + i + "-drop"));
      container.appendChild(box);
    });
    container.appendChild(button(_("Add an entry event"), function () {
      expr.PrimaryCriteria = primary;
      (primary.CriteriaList = primary.CriteriaList || []).push({ ConditionOccurrence: { CodesetId: firstSetId() } });
    }, "builder-add", "entry-new"));
    var obsWindow = primary.ObservationWindow || {};
    var row = el("div", "builder-row");
    row.appendChild(numberField("entry-prior", _("Days of observation before the event"), obsWindow.PriorDays || 0, function (v) {
      expr.PrimaryCriteria = primary;
      primary.ObservationWindow = primary.ObservationWindow || { PriorDays: 0, PostDays: 0 };
      primary.ObservationWindow.PriorDays = v || 0;
    }, 0));
    row.appendChild(numberField("entry-post", _("…and after it"), obsWindow.PostDays || 0, function (v) {
      expr.PrimaryCriteria = primary;
      primary.ObservationWindow = primary.ObservationWindow || { PriorDays: 0, PostDays: 0 };
      primary.ObservationWindow.PostDays = v || 0;
    }, 0));
    container.appendChild(row);
    var limits = el("div", "builder-row");
    limits.appendChild(selectField("entry-limit", _("Entry events kept"), LIMITS, (primary.PrimaryCriteriaLimit || {}).Type || "First", function (v) {
      expr.PrimaryCriteria = primary;
      primary.PrimaryCriteriaLimit = primary.PrimaryCriteriaLimit || {};
      primary.PrimaryCriteriaLimit.Type = v;
    }));
    limits.appendChild(selectField("entry-qualified", _("After the rules, keep"), LIMITS, (expr.QualifiedLimit || {}).Type || "First", function (v) {
      expr.QualifiedLimit = expr.QualifiedLimit || {};
      expr.QualifiedLimit.Type = v;
    }));
    limits.appendChild(selectField("entry-expression", _("In the cohort, keep"), LIMITS, (expr.ExpressionLimit || {}).Type || "All", function (v) {
      expr.ExpressionLimit = expr.ExpressionLimit || {};
      expr.ExpressionLimit.Type = v;
    }));
    container.appendChild(limits);
  }

  function endpointEditor(id, label, win, key) {
    // {Days, Coeff}: no Days = unbounded ("any time") on the side Coeff says. Created on the first edit only:
    // rendering never adds a key to the document.
    var endpoint = win[key] || { Days: 0, Coeff: key === "Start" ? -1 : 1 };
    var mode = endpoint.Days === null || endpoint.Days === undefined ? (endpoint.Coeff < 0 ? "B" : "A") : (endpoint.Coeff < 0 ? "b" : "a");
    var box = el("span", "builder-range");
    box.appendChild(selectField(id + "-mode", label, [["b", _("days before index")], ["a", _("days after index")],
      ["B", _("any time before")], ["A", _("any time after")]], mode, function (v) {
      win[key] = endpoint;
      endpoint.Coeff = v === "b" || v === "B" ? -1 : 1;
      if (v === "B" || v === "A") {
        delete endpoint.Days;
      } else if (endpoint.Days === null || endpoint.Days === undefined) {
        endpoint.Days = 0;
      }
    }, "structural"));
    if (mode === "a" || mode === "b") {
      box.appendChild(numberField(id + "-days", interpolate(_("%s: days"), [label]), endpoint.Days, function (v) {
        win[key] = endpoint;
        endpoint.Days = v === null ? 0 : Math.abs(Math.round(v));
      }, 0));
    }
    return box;
  }

  function windowEditor(id, label, win) {
    var box = el("div", "builder-row builder-window");
    box.appendChild(el("span", "builder-label", label));
    box.appendChild(endpointEditor(id + "-start", interpolate(_("%s from"), [label]), win, "Start"));
    box.appendChild(endpointEditor(id + "-end", interpolate(_("%s to"), [label]), win, "End"));
    return box;
  }

  function correlatedEditor(group, correlated, index, id) {
    var box = el("div", "builder-item");
    var occurrence = correlated.Occurrence || { Type: 2, Count: 1 };
    var head = el("div", "builder-row");
    head.appendChild(selectField(id + "-occ", _("Occurs"), [[2, _("at least")], [1, _("at most")], [0, _("exactly")]], occurrence.Type, function (v) {
      correlated.Occurrence = occurrence;
      occurrence.Type = Number(v);
    }));
    head.appendChild(numberField(id + "-count", _("times"), occurrence.Count, function (v) {
      correlated.Occurrence = occurrence;
      occurrence.Count = v === null ? 0 : Math.max(0, Math.round(v));
    }, 0));
    box.appendChild(head);
    if (correlated.Criteria) {
      box.appendChild(criterionEditor(correlated.Criteria, id + "-c"));
    }
    if (correlated.StartWindow) {
      box.appendChild(windowEditor(id + "-sw", _("Starting"), correlated.StartWindow));
    }
    var options = el("div", "builder-row");
    options.appendChild(checkField(id + "-ew-on", _("Also limit when it ends"), Boolean(correlated.EndWindow), function (on) {
      if (on) {
        correlated.EndWindow = { Start: { Coeff: -1 }, End: { Coeff: 1 }, UseIndexEnd: false, UseEventEnd: true };
      } else {
        delete correlated.EndWindow;
      }
    }, "structural"));
    options.appendChild(checkField(id + "-visit", _("In the same visit"), correlated.RestrictVisit, function (on) { correlated.RestrictVisit = on; }));
    options.appendChild(checkField(id + "-obs", _("Ignore the observation period"), correlated.IgnoreObservationPeriod, function (on) { correlated.IgnoreObservationPeriod = on; }));
    box.appendChild(options);
    if (correlated.EndWindow) {
      box.appendChild(windowEditor(id + "-ew", _("Ending"), correlated.EndWindow));
    }
    box.appendChild(button(_("Remove criterion"), function () { group.CriteriaList.splice(index, 1); }, "builder-small", id + "-drop"));
    return box;
  }

  function groupEditor(group, id, onRemove) {
    var box = el("div", "builder-group");
    var head = el("div", "builder-row");
    head.appendChild(selectField(id + "-type", _("Persons must meet"), [["ALL", _("all of")], ["ANY", _("any of")], ["AT_LEAST", _("at least")], ["AT_MOST", _("at most")]],
      (group.Type || "ALL").toUpperCase(), function (v) {
        group.Type = v;
        if (v === "AT_LEAST" || v === "AT_MOST") {
          group.Count = group.Count || 1;
        } else {
          delete group.Count;
        }
      }, "structural"));
    var type = (group.Type || "ALL").toUpperCase();
    if (type === "AT_LEAST" || type === "AT_MOST") {
      head.appendChild(numberField(id + "-n", _("of these (how many)"), group.Count, function (v) { group.Count = v === null ? 1 : Math.max(0, Math.round(v)); }, 0));
    }
    box.appendChild(head);
    (group.CriteriaList || []).forEach(function (correlated, i) {
      box.appendChild(correlatedEditor(group, correlated, i, id + "-k" + i));
    });
    (group.DemographicCriteriaList || []).forEach(function (demographic, i) {
      var item = el("div", "builder-item");
      item.appendChild(el("h4", null, _("Age and gender at the index date")));
      var row = el("div", "builder-row");
      row.appendChild(rangeEditor(id + "-d" + i + "-age", _("Age"), demographic, "Age", "number"));
      row.appendChild(genderEditor(id + "-d" + i + "-gender", demographic));
      item.appendChild(row);
      item.appendChild(button(_("Remove age/gender"), function () { group.DemographicCriteriaList.splice(i, 1); }, "builder-small", id + "-d" + i + "-drop"));
      box.appendChild(item);
    });
    (group.Groups || []).forEach(function (nested, i) {
      var item = el("div", "builder-item builder-nested");
      item.appendChild(el("h4", null, _("Nested group")));
      item.appendChild(groupEditor(nested, id + "-g" + i, function () { group.Groups.splice(i, 1); }));
      box.appendChild(item);
    });
    var actions = el("div", "builder-row");
    actions.appendChild(button(_("Add criterion"), function () {
      (group.CriteriaList = group.CriteriaList || []).push({
        Criteria: { ConditionOccurrence: { CodesetId: firstSetId() } },
        StartWindow: { Start: { Days: 365, Coeff: -1 }, End: { Days: 0, Coeff: 1 }, UseIndexEnd: false, UseEventEnd: false },
        Occurrence: { Type: 2, Count: 1 }
      });
    }, "builder-small", id + "-addc"));
    actions.appendChild(button(_("Add age/gender"), function () { (group.DemographicCriteriaList = group.DemographicCriteriaList || []).push({}); }, "builder-small", id + "-addd"));
    actions.appendChild(button(_("Add nested group"), function () {
      (group.Groups = group.Groups || []).push({ Type: "ALL", CriteriaList: [], DemographicCriteriaList: [], Groups: [] });
    }, "builder-small", id + "-addg"));
    if (onRemove) {
      actions.appendChild(button(_("Remove group"), onRemove, "builder-small", id + "-drop"));
    }
    box.appendChild(actions);
    return box;
  }

  function renderRules() {
    var container = region("rules");
    clear(container);
    (expr.InclusionRules || []).forEach(function (rule, i) {
      var id = "rule" + i;
      var box = el("fieldset", "builder-rule");
      box.dataset.block = "rule-" + i;
      box.appendChild(el("legend", null, interpolate(_("Rule %s"), [i + 1]) + (rule.name ? ": " + rule.name : "")));
      var head = el("div", "builder-row");
      head.appendChild(textField(id + "-name", _("Rule name"), rule.name, function (v) { rule.name = v; }));
      head.appendChild(textField(id + "-description", _("Description"), rule.description, function (v) { setOrDelete(rule, "description", v); }));
      box.appendChild(head);
      if (rule.expression) {
        box.appendChild(groupEditor(rule.expression, id, null));
      }
      var sentence = el("p", "builder-sentence");
      sentence.dataset.sentence = "rule-" + i;
      box.appendChild(sentence);
      var errors = el("ul", "builder-errors");
      errors.dataset.errors = "rule-" + i;
      box.appendChild(errors);
      var ruleWarnings = el("ul", "builder-warnings");
      ruleWarnings.dataset.warnings = "rule-" + i;
      box.appendChild(ruleWarnings);
      box.appendChild(button(_("Remove rule"), function () { expr.InclusionRules.splice(i, 1); }, "builder-small", id + "-drop"));
      container.appendChild(box);
    });
    container.appendChild(button(_("Add an inclusion rule"), function () {
      expr.InclusionRules = expr.InclusionRules || [];
      expr.InclusionRules.push({ name: interpolate(_("Rule %s"), [expr.InclusionRules.length + 1]),
        expression: { Type: "ALL", CriteriaList: [], DemographicCriteriaList: [], Groups: [] } });
    }, "builder-add", "rule-new"));
  }

  function renderExit() {
    var container = region("exit");
    clear(container);
    var end = expr.EndStrategy || {};
    var strategy = end.DateOffset ? "offset" : end.CustomEra ? "era" : "observation";
    container.appendChild(selectField("exit-strategy", _("The person leaves the cohort"), [["observation", _("at the end of the observation period")],
      ["offset", _("a fixed number of days after the entry event")], ["era", _("at the end of continuous drug exposure")]], strategy, function (v) {
      if (v === "observation") {
        delete expr.EndStrategy;
      } else if (v === "offset") {
        expr.EndStrategy = { DateOffset: { DateField: "StartDate", Offset: 0 } };
      } else {
        expr.EndStrategy = { CustomEra: { DrugCodesetId: firstSetId(), GapDays: 30, Offset: 0 } };
      }
    }, "structural"));
    var row = el("div", "builder-row");
    if (strategy === "offset") {
      var offset = end.DateOffset;
      row.appendChild(selectField("exit-field", _("Counted from the event's"), [["StartDate", _("start date")], ["EndDate", _("end date")]], offset.DateField || "StartDate", function (v) { offset.DateField = v; }));
      row.appendChild(numberField("exit-offset", _("Days after"), offset.Offset || 0, function (v) { offset.Offset = v === null ? 0 : Math.round(v); }));
    } else if (strategy === "era") {
      var era = end.CustomEra;
      row.appendChild(setSelect("exit-drug", _("Drug concept set"), era.DrugCodesetId, function (v) { setOrDelete(era, "DrugCodesetId", v === "" ? null : Number(v)); }));
      row.appendChild(numberField("exit-gap", _("Gap days allowed"), era.GapDays || 0, function (v) { era.GapDays = v === null ? 0 : Math.round(v); }, 0));
      row.appendChild(numberField("exit-era-offset", _("Days added at the end"), era.Offset || 0, function (v) { era.Offset = v === null ? 0 : Math.round(v); }));
    }
    container.appendChild(row);
    (expr.CensoringCriteria || []).forEach(function (criterion, i) {
      var box = el("div", "builder-item");
      box.appendChild(el("h3", null, _("Censoring event: the person leaves at")));
      box.appendChild(criterionEditor(criterion, "censor" + i));
      box.appendChild(button(_("Remove censoring event"), function () { expr.CensoringCriteria.splice(i, 1); }, "builder-small", "censor" + i + "-drop"));
      container.appendChild(box);
    });
    container.appendChild(button(_("Add a censoring event"), function () {
      (expr.CensoringCriteria = expr.CensoringCriteria || []).push({ DrugExposure: { CodesetId: firstSetId() } });
    }, "builder-add", "censor-new"));
    var more = el("div", "builder-row");
    var collapse = expr.CollapseSettings || {};
    more.appendChild(numberField("exit-pad", _("Join cohort periods less than … days apart"), collapse.EraPad || 0, function (v) {
      expr.CollapseSettings = expr.CollapseSettings || { CollapseType: "ERA" };
      expr.CollapseSettings.EraPad = v === null ? 0 : Math.max(0, Math.round(v));
    }, 0));
    var censorWindow = expr.CensorWindow || {};
    more.appendChild(textField("exit-window-start", _("Cut cohort periods from"), censorWindow.StartDate, function (v) {
      expr.CensorWindow = expr.CensorWindow || {};
      setOrDelete(expr.CensorWindow, "StartDate", v);
    }, "date"));
    more.appendChild(textField("exit-window-end", _("…to"), censorWindow.EndDate, function (v) {
      expr.CensorWindow = expr.CensorWindow || {};
      setOrDelete(expr.CensorWindow, "EndDate", v);
    }, "date"));
    container.appendChild(more);
  }

  function renderSources() {
    var container = region("sources");
    clear(container);
    if (!sources.length) {
      container.appendChild(el("p", "hint", definition ? _("No site to count on: the definition's project has no loaded site you may use.") : _("Save the definition first; its project decides the sites.")));
      return;
    }
    // A save may move the definition to another project, whose sites differ: the list is rebuilt, and a site
    // still offered keeps its tick.
    var ticked = {};
    container.querySelectorAll("input[type=checkbox]").forEach(function (box) { ticked[box.id] = box.checked; });
    clear(container);
    sources.forEach(function (source) {
      var id = "source-" + source.id;
      container.appendChild(checkField(id, source.label, ticked[id] === undefined ? true : ticked[id], function () {}, "ui"));
    });
  }

  // --- descriptions, errors -----------------------------------------------------------------------------------

  function showDescription(description) {
    if (!description) {
      return;
    }
    form.querySelectorAll("[data-sentence]").forEach(function (node) {
      node.textContent = description.sentences[node.dataset.sentence] || "";
    });
    var extras = region("extras");
    clear(extras);
    (description.extras || []).forEach(function (fragment) {
      var details = el("details", "builder-extra");
      details.appendChild(el("summary", null, fragment.path));
      details.appendChild(el("pre", "code", fragment.json));
      extras.appendChild(details);
    });
    region("extras-block").hidden = !(description.extras || []).length;
  }

  function showErrors(errors) {
    form.querySelectorAll("[data-errors]").forEach(clear);
    (errors || []).forEach(function (error) {
      var list = form.querySelector("[data-errors='" + error.block + "']") || form.querySelector("[data-errors=general]");
      list.appendChild(el("li", "error", (error.path ? error.path + ": " : "") + error.message));
    });
  }

  // Warnings (cohorts/definitions/warnings.py): valid but probably not meant. Each beside its block, and all of
  // them in the summary by the Save button; they never stop a save or a count.
  function showWarnings(warnings) {
    form.querySelectorAll("[data-warnings]").forEach(clear);
    var summary = region("warning-summary");
    var list = summary.querySelector("ul");
    clear(list);
    (warnings || []).forEach(function (warning) {
      var target = form.querySelector("[data-warnings='" + warning.block + "']") || form.querySelector("[data-warnings=general]");
      var li = el("li", null, warning.message);
      li.dataset.code = warning.code;
      target.appendChild(li);
      list.appendChild(el("li", null, warning.message));
    });
    summary.hidden = !(warnings || []).length;
  }

  function warningsText(warnings) {
    var n = (warnings || []).length;
    return n ? interpolate(ngettext("%s warning: see the list below.", "%s warnings: see the list below.", n), [n]) : "";
  }

  function csrf() {
    return form.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) { return { status: response.status, data: data }; },
        function () { return { status: response.status, data: { errors: [{ block: "general", path: "", message: interpolate(_("The server answered %s."), [response.status]) }] } }; });
    });
  }

  var describeTimer = null;
  var describeSeq = 0;

  function describe() {
    var seq = ++describeSeq;
    postJson(urls.describe, { expression: expr }).then(function (answer) {
      if (seq !== describeSeq) {
        return;
      }
      if (answer.status === 200) {
        lastDescription = answer.data;
        lastValid = answer.data.valid;
        showDescription(answer.data);
        showErrors(answer.data.errors);
        showWarnings(answer.data.warnings);
        form.querySelector("[data-field=validity]").textContent = answer.data.valid ?
          (_("Valid.") + " " + warningsText(answer.data.warnings)).trim() : _("Not valid yet: see the messages in the blocks.");
        // The describe pause was the auto-count's pause: a valid draft not counted yet is counted now.
        if (answer.data.valid && autoCount.checked && definition && countedJson !== JSON.stringify(expr)) {
          count();
        }
      }
    }).catch(function () {
      form.querySelector("[data-field=validity]").textContent = _("Could not check the definition (connection?).");
    });
  }

  // --- rendering ----------------------------------------------------------------------------------------------

  function render() {
    // Rebuilt whole after each change: simpler than patching, and cheap at this size. Focus stays on the control
    // with the same id, so keyboard users keep their place.
    var focused = document.activeElement && document.activeElement.id;
    renderConceptSets();
    renderEntry();
    renderRules();
    renderExit();
    showDescription(lastDescription);
    if (focused) {
      var again = document.getElementById(focused);
      if (again) {
        again.focus();
      }
    }
  }

  // --- unsaved edits --------------------------------------------------------------------------------------------

  var nameInput = document.getElementById("builder-name");
  var descriptionInput = document.getElementById("builder-description");
  var projectSelect = document.getElementById("builder-project");

  function details() {
    return { name: nameInput.value, description: descriptionInput.value, project: projectSelect.value || null };
  }

  function isDirty() {
    return savedJson !== JSON.stringify(expr) || (savedDetails !== null && savedDetails !== JSON.stringify(details()));
  }

  function dirtyChanged() {
    var dirty = isDirty();
    var status = form.querySelector("[data-field=save-status]");
    if (dirty) {
      status.textContent = _("Unsaved changes.");
    } else if (status.textContent === _("Unsaved changes.")) {
      status.textContent = "";
    }
    form.querySelector("[data-action=discard]").hidden = !dirty;
  }

  // Leaving with unsaved edits asks first: the browser's own question on reload, close or typed address, and ours
  // on the page's links and forms (so the answer "stay" keeps everything in place).
  window.addEventListener("beforeunload", function (event) {
    if (!leaving && isDirty()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  function mayLeave() {
    if (leaving || !isDirty()) {
      return true;
    }
    if (window.confirm(_("This definition has unsaved changes. Leave the page and lose them?"))) {
      leaving = true;
      return true;
    }
    return false;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey ||
      link.target === "_blank" || link.hasAttribute("download") || link.getAttribute("href").charAt(0) === "#") {
      return;
    }
    if (!mayLeave()) {
      event.preventDefault();
    }
  }, true);
  document.addEventListener("submit", function (event) {
    if (event.target !== form && !mayLeave()) {
      event.preventDefault();
    }
  }, true);

  function discard() {
    expr = JSON.parse(savedJson);
    if (savedDetails !== null) {
      var old = JSON.parse(savedDetails);
      nameInput.value = old.name;
      descriptionInput.value = old.description;
      projectSelect.value = old.project === null ? "" : String(old.project);
    }
    searchState = {};
    showErrors([]);
    render();
    valueChanged();
    form.querySelector("[data-field=save-status]").textContent = _("Changes discarded.");
  }

  function valueChanged() {
    dirtyChanged();
    draftChanged();
    window.clearTimeout(describeTimer);
    describeTimer = window.setTimeout(describe, DESCRIBE_MS);
  }

  function changed() {
    render();
    valueChanged();
  }

  // --- save and count -----------------------------------------------------------------------------------------

  function save(note) {
    var status = form.querySelector("[data-field=save-status]");
    var sent = details();
    var json = JSON.stringify(expr);
    var body = { expression: expr, note: note || document.getElementById("builder-note").value,
      name: sent.name, project: sent.project, description: sent.description };
    var url = definition ? urls.save : urls.create;
    var before = definition ? definition.version : null;
    status.textContent = _("Saving…");
    return postJson(url, body).then(function (answer) {
      if (answer.status !== 201) {
        showErrors(answer.data.errors);
        status.textContent = _("Not saved: see the messages.");
        throw new Error("not saved");
      }
      var created = !definition;
      definition = answer.data.definition;
      urls = Object.assign({}, urls, answer.data.urls);
      sources = answer.data.sources || [];
      // What was sent is what is saved now (edits made while the answer was on its way stay unsaved).
      savedJson = json;
      savedDetails = JSON.stringify({ name: definition.name, description: definition.description,
        project: definition.project === null ? null : String(definition.project) });
      showErrors([]);
      showWarnings(answer.data.warnings);
      var saved = definition.version === before ?
        _("Saved the name, description and project; the criteria did not change, so there is no new version.") :
        interpolate(_("Saved as version %s."), [definition.version]);
      status.textContent = (saved + " " + warningsText(answer.data.warnings)).trim();
      if (JSON.stringify(details()) === JSON.stringify(sent)) {
        nameInput.value = definition.name;  // as the server keeps it (trimmed)
      }
      document.getElementById("builder-note").value = "";
      document.querySelector("[data-field=title]").textContent = definition.name;
      if (created) {
        window.history.replaceState(null, "", urls.edit);
        form.querySelector("[data-action=save]").textContent = _("Save version");
      }
      renderSources();
      dirtyChanged();
      return definition;
    });
  }

  // --- counting the draft -------------------------------------------------------------------------------------
  //
  // Count posts the draft as it is on screen (count.json): nothing is saved. Each count is tagged with a sequence
  // number and the JSON it counted; an answer or a poll of an older count than the latest is dropped, and an edit
  // takes the number off the screen until the new draft is counted, so the number shown always belongs to the
  // draft shown. The server cancels the user's older draft count still in flight.

  var countSeq = 0;
  var countedJson = null;  // the draft of the latest count started, while it is still the draft on screen
  var shown = null;        // {json, result}: the count on screen and the draft it belongs to

  function countBox() {
    return region("count");
  }

  function showRun(result, seq, json) {
    if (seq !== countSeq) {
      return;
    }
    var box = countBox();
    box.hidden = false;
    box.classList.remove("builder-stale");
    shown = { json: json, result: result };
    box.querySelector("[data-field=total]").textContent = result.total ? result.total.display : "—";
    box.querySelector("[data-field=total-privacy]").textContent = result.total_privacy ?
      result.total_privacy.description + ((result.sites || []).length > 1 ? " " + _("(strictest of the sites' rules)") : "") : "";
    box.querySelector("[data-field=count-state]").textContent = result.state + (result.cancelled ? " (" + _("cancelled") + ")" : "");
    var body = box.querySelector("#builder-sites tbody");
    clear(body);
    (result.sites || []).forEach(function (site) {
      var tr = body.insertRow();
      var progress = site.progress || {};
      var state = site.state === "running" && progress.total ? site.state + " (" + progress.step + "/" + progress.total + ")" : site.state;
      [site.site + " (" + site.source + ")", state, site.persons ? site.persons.display : "—", site.privacy.description]
        .forEach(function (text, i) {
          var td = tr.insertCell();
          td.textContent = text;
          if (i === 2) {
            td.className = "num";
          }
        });
    });
    box.querySelector("[data-action=cancel]").hidden = !result.can_cancel;
    var link = box.querySelector("[data-field=result-link]");
    link.hidden = !link.dataset.request || link.dataset.request !== String(result.request);
  }

  function draftChanged() {
    // Answers still on their way belong to an older draft: they are dropped, and the number on screen goes until
    // the new draft is counted (it comes back if the edit is undone).
    var now = JSON.stringify(expr);
    if (countedJson !== null && countedJson !== now) {
      countSeq++;
      countedJson = null;
    }
    markStale(now);
  }

  function markStale(now) {
    var box = countBox();
    if (box.hidden || shown === null) {
      return;
    }
    if (shown.json === now) {
      showRun(shown.result, countSeq, shown.json);
      return;
    }
    box.classList.add("builder-stale");
    box.querySelector("[data-field=total]").textContent = "—";
    box.querySelectorAll("#builder-sites tbody td.num").forEach(function (td) { td.textContent = "—"; });
    box.querySelector("[data-field=count-state]").textContent = autoCount.checked ?
      _("changed: counting after the pause…") : _("changed since this count: press Count");
    box.querySelector("[data-action=cancel]").hidden = true;
    box.querySelector("[data-field=result-link]").hidden = true;
    box.querySelector("[data-field=count-warning]").hidden = true;
  }

  function poll(statusUrl, seq, json) {
    fetch(statusUrl + "?wait=" + WAIT_SECONDS, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (result) {
        if (seq !== countSeq) {
          return;
        }
        showRun(result, seq, json);
        if (!result.finished) {
          poll(statusUrl, seq, json);
        }
      })
      .catch(function () {
        if (seq === countSeq) {
          window.setTimeout(function () { poll(statusUrl, seq, json); }, RETRY_MS);
        }
      });
  }

  function chosenSources() {
    return sources.filter(function (source) {
      var box = document.getElementById("source-" + source.id);
      return box && box.checked;
    }).map(function (source) { return source.id; });
  }

  function countDraft() {
    var chosen = chosenSources();
    if (!chosen.length) {
      showErrors([{ block: "general", path: "", message: _("Choose at least one site to count on.") }]);
      return;
    }
    var seq = ++countSeq;
    var json = JSON.stringify(expr);
    countedJson = json;
    var box = countBox();
    postJson(urls.count, { expression: expr, sources: chosen }).then(function (answer) {
      if (seq !== countSeq) {
        return;
      }
      if (answer.status !== 201) {
        countedJson = null;
        showErrors(answer.data.errors);
        return;
      }
      showErrors([]);
      showWarnings(answer.data.warnings);
      var countWarning = box.querySelector("[data-field=count-warning]");
      var warned = (answer.data.warnings || []).length;
      countWarning.textContent = warned ? interpolate(ngettext(
        "Counted with %s warning: the number may not be what you mean (see the warning above).",
        "Counted with %s warnings: the number may not be what you mean (see the warnings above).", warned), [warned]) : "";
      countWarning.hidden = !countWarning.textContent;
      box.dataset.cancelUrl = answer.data.cancel_url;
      var link = box.querySelector("[data-field=result-link]");
      link.href = answer.data.url;
      link.dataset.request = String(answer.data.request);
      // A draft counted before (or saved and counted) answers at once from the result cache: nothing to poll.
      showRun(answer.data.result, seq, json);
      if (!answer.data.result.finished) {
        poll(answer.data.status_url, seq, json);
      }
    }, function () {
      if (seq === countSeq) {
        countedJson = null;
        showErrors([{ block: "general", path: "", message: _("Could not start the count (connection?).") }]);
      }
    });
  }

  function count() {
    if (definition) {
      countDraft();
      return;
    }
    // A new definition is created first: its project decides the sites it may be counted on.
    save("").then(countDraft, function () {});
  }

  var autoCount = form.querySelector("[data-field=auto-count]");
  // The switch is remembered in this browser for this user; switching it on counts the draft on screen.
  try {
    autoCount.checked = window.localStorage.getItem(AUTO_COUNT_KEY) === "1";
  } catch (e) {
    autoCount.checked = false;
  }
  autoCount.addEventListener("change", function () {
    try {
      window.localStorage.setItem(AUTO_COUNT_KEY, autoCount.checked ? "1" : "0");
    } catch (e) {
      // Storage refused (private mode): the switch still works on this page.
    }
    if (autoCount.checked && definition && lastValid && countedJson !== JSON.stringify(expr)) {
      count();
    } else {
      markStale(JSON.stringify(expr));
    }
  });
  form.querySelector("[data-action=save]").addEventListener("click", function () {
    save().catch(function () {});
  });
  form.querySelector("[data-action=count]").addEventListener("click", count);
  form.querySelector("[data-action=discard]").addEventListener("click", discard);
  form.querySelector("[data-action=cancel]").addEventListener("click", function () {
    var box = countBox();
    var seq = countSeq;
    var json = countedJson;
    var data = new FormData();
    fetch(box.dataset.cancelUrl, { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrf() } })
      .then(function (response) { return response.json(); })
      .then(function (result) { showRun(result, seq, json); });
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
  });

  (config.projects || []).forEach(function (project) {
    var option = el("option", null, project.title);
    option.value = String(project.id);
    projectSelect.appendChild(option);
  });
  if (definition) {
    nameInput.value = definition.name;
    descriptionInput.value = definition.description || "";
    projectSelect.value = definition.project === null ? "" : String(definition.project);
    savedDetails = JSON.stringify(details());
  } else {
    if (config.projects && config.projects.length === 1) {
      projectSelect.value = String(config.projects[0].id);
    }
    savedDetails = JSON.stringify(details());
  }
  [nameInput, descriptionInput, projectSelect].forEach(function (control) {
    control.addEventListener("input", dirtyChanged);
    control.addEventListener("change", dirtyChanged);
  });
  renderSources();
  render();
  describe();
})();
