/* What every page script of Soyang shares (loaded by templates/base.html after Django's JavaScript catalogue and
 * before the page's own script): translation (`_`, `interpolate`: the catalogue of /jsi18n/, English without it),
 * the names of a job's states, and the DOM helpers that put text on a page — always as text, never as HTML. */
(function () {
  "use strict";

  var gettext = window.gettext || function (s) { return s; };
  var interpolate = window.interpolate || function (fmt, args, named) {
    var i = 0;
    return named
      ? fmt.replace(/%\((\w+)\)s/g, function (m, key) { return String(args[key]); })
      : fmt.replace(/%s/g, function () { return String(args[i++]); });
  };

  // A site job's state, or a request's over its sites (jobs/choices.py), in the reader's language.
  var STATES = {
    queued: gettext("queued"), running: gettext("running"), finished: gettext("finished"),
    succeeded: gettext("succeeded"), failed: gettext("failed"), cancelled: gettext("cancelled")
  };

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

  // Empties `container`, then puts `node` in it (when given).
  function replace(container, node) {
    while (container.firstChild) {
      container.removeChild(container.firstChild);
    }
    if (node) {
      container.appendChild(node);
    }
  }

  window.Soyang = { _: gettext, interpolate: interpolate, STATES: STATES, el: el, replace: replace };
})();
