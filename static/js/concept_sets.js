/*
 * Concept set editor: search the vocabulary (search.json), add hits to the set, toggle exclude / descendants /
 * mapped per concept, see the resolved size (resolve.json, debounced) and save.
 * No inline script (strict CSP): configuration and translated words come from the json_script "concept-set-config".
 */
(function () {
  "use strict";
  var configNode = document.getElementById("concept-set-config");
  if (!configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var text = config.text;
  var items = (config.expression.items || []).slice();
  var resolveTimer = null;

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, key) {
      return String(values[key]);
    });
  }

  function csrf() {
    return document.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          throw new Error(data.error || String(response.status));
        }
        return data;
      });
    });
  }

  function has(conceptId) {
    return items.some(function (item) {
      return item.concept.CONCEPT_ID === conceptId;
    });
  }

  function toConcept(hit) {
    return {
      CONCEPT_ID: hit.concept_id, CONCEPT_NAME: hit.concept_name, STANDARD_CONCEPT: hit.standard_concept,
      INVALID_REASON: hit.invalid_reason, CONCEPT_CODE: hit.concept_code, DOMAIN_ID: hit.domain_id,
      VOCABULARY_ID: hit.vocabulary_id, CONCEPT_CLASS_ID: hit.concept_class_id
    };
  }

  function checkbox(item, key, label) {
    var box = document.createElement("input");
    box.type = "checkbox";
    box.checked = Boolean(item[key]);
    box.disabled = !config.can_change;
    box.setAttribute("aria-label", fill(label, { name: item.concept.CONCEPT_NAME }));
    box.addEventListener("change", function () {
      item[key] = box.checked;
      scheduleResolve();
    });
    var cell = document.createElement("td");
    cell.appendChild(box);
    return cell;
  }

  function cell(content) {
    var td = document.createElement("td");
    td.textContent = content;
    return td;
  }

  function renderItems() {
    var body = document.querySelector("#set-items tbody");
    body.textContent = "";
    items.forEach(function (item, index) {
      var row = document.createElement("tr");
      var name = document.createElement("td");
      var link = document.createElement("a");
      link.href = config.urls.concept.replace(/0\/$/, item.concept.CONCEPT_ID + "/");
      link.textContent = item.concept.CONCEPT_ID + " " + item.concept.CONCEPT_NAME;
      name.appendChild(link);
      row.appendChild(name);
      row.appendChild(cell(item.concept.DOMAIN_ID || ""));
      row.appendChild(cell((item.concept.VOCABULARY_ID || "") + " " + (item.concept.CONCEPT_CODE || "")));
      row.appendChild(checkbox(item, "isExcluded", text.exclude));
      row.appendChild(checkbox(item, "includeDescendants", text.descendants));
      row.appendChild(checkbox(item, "includeMapped", text.mapped));
      var actions = document.createElement("td");
      if (config.can_change) {
        var remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "×";
        remove.setAttribute("aria-label", fill(text.remove, { name: item.concept.CONCEPT_NAME }));
        remove.addEventListener("click", function () {
          items.splice(index, 1);
          renderItems();
          scheduleResolve();
        });
        actions.appendChild(remove);
      }
      row.appendChild(actions);
      body.appendChild(row);
    });
  }

  function scheduleResolve() {
    window.clearTimeout(resolveTimer);
    resolveTimer = window.setTimeout(resolve, 300);
  }

  function resolve() {
    var status = document.getElementById("set-resolved");
    var list = document.getElementById("set-resolved-list");
    if (!items.length) {
      status.textContent = text.empty;
      list.textContent = "";
      return;
    }
    postJson(config.urls.resolve, { expression: { items: items } })
      .then(function (data) {
        status.textContent = fill(text.resolved, { size: data.size });
        list.textContent = "";
        data.concepts.forEach(function (concept) {
          var li = document.createElement("li");
          li.textContent = concept.concept_id + " " + concept.concept_name + " (" + concept.vocabulary_id + ")";
          list.appendChild(li);
        });
      })
      .catch(function (error) {
        status.textContent = error.message;
      });
  }

  function line(className, content, title) {
    var node = document.createElement("span");
    node.className = className;
    node.textContent = content;
    if (title) {
      node.title = title;
    }
    return node;
  }

  // A hit's 'Maps to' links (KCD7 E11.9 → 201826 Type 2 diabetes mellitus) and its released counts per site, in
  // the words search.json gave them: the Concepts page's cells, decided on the server.
  function hitDetails(hit) {
    var nodes = [];
    (hit.maps_to || []).forEach(function (other) {
      nodes.push(line("concepts-mapping", hit.vocabulary_id + " " + hit.concept_code + " → " + other.concept_id + " " + other.concept_name));
    });
    (hit.mapped_from || []).forEach(function (other) {
      nodes.push(line("concepts-mapping", other.vocabulary_id + " " + other.concept_code + " → " + hit.concept_id + " " + hit.concept_name, other.concept_name));
    });
    var counts = (hit.counts || []).map(function (count) {
      var numbers = count.records !== null && count.records !== undefined;
      return count.source_name + ": " + (numbers ? count.records_text + " / " + count.persons_text : count.records_text);
    });
    if (counts.length) {
      nodes.push(line("concepts-mapping builder-hit-counts", counts.join(" · "), (hit.counts[0] || {}).rule));
    }
    return nodes;
  }

  function search(event) {
    event.preventDefault();
    var status = document.getElementById("set-search-status");
    var results = document.getElementById("set-search-results");
    var q = document.getElementById("set-q").value.trim();
    if (!q) {
      return;
    }
    status.textContent = text.searching;
    var url = config.urls.search + "?q=" + encodeURIComponent(q) + "&domain=" +
      encodeURIComponent(document.getElementById("set-domain").value) + "&standard=any&limit=25";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) {
            throw new Error(data.error || text.unavailable);
          }
          return data;
        });
      })
      .then(function (data) {
        results.textContent = "";
        status.textContent = data.results.length ? "" : text.none;
        data.results.forEach(function (hit) {
          var li = document.createElement("li");
          var button = document.createElement("button");
          button.type = "button";
          button.disabled = has(hit.concept_id);
          button.textContent = button.disabled ? text.added : text.add;
          button.setAttribute("aria-label", (button.disabled ? text.added : text.add) + ": " + hit.concept_name);
          button.addEventListener("click", function () {
            items.push({ concept: toConcept(hit), isExcluded: false, includeDescendants: true, includeMapped: false });
            button.disabled = true;
            button.textContent = text.added;
            renderItems();
            scheduleResolve();
          });
          var label = document.createElement("span");
          label.textContent = " " + hit.concept_name + " — " + hit.domain_id + ", " + hit.vocabulary_id + " " +
            hit.concept_code + (hit.standard_concept ? " [" + hit.standard_concept + "]" : "");
          li.appendChild(button);
          li.appendChild(label);
          hitDetails(hit).forEach(function (node) { li.appendChild(node); });
          results.appendChild(li);
        });
        if (data.results.length && (data.results[0].counts || []).length) {
          status.textContent = data.count_legend || "";
        }
      })
      .catch(function (error) {
        status.textContent = error.message;
      });
  }

  function save() {
    var status = document.getElementById("set-save-status");
    var project = document.getElementById("set-project");
    status.textContent = text.saving;
    var body = {
      name: document.getElementById("set-name").value,
      description: document.getElementById("set-description").value,
      expression: { items: items }
    };
    if (project) {
      body.project = project.value;
    }
    postJson(config.urls.save, body)
      .then(function (data) {
        status.textContent = text.saved;
        if (project && data.url) {
          window.location.assign(data.url);
        }
      })
      .catch(function (error) {
        status.textContent = fill(text.failed, { error: error.message });
      });
  }

  var searchForm = document.getElementById("set-search");
  if (searchForm) {
    searchForm.addEventListener("submit", search);
  }
  var saveButton = document.getElementById("set-save");
  if (saveButton) {
    saveButton.addEventListener("click", save);
  }
  renderItems();
  resolve();
})();
