// agentfn dashboard: live updates over server-sent events, without page reloads.
// The server pushes `fragments` ({element id: html}) when a part of the page changed, and, on
// the events page, `events` (new rows, newest first). A fragment holding the element being
// typed in is swapped once the focus leaves it, so a half-typed answer is never lost.
(() => {
  "use strict";
  const body = document.body;
  const namespace = body.dataset.namespace;
  const view = body.dataset.view;
  const select = document.getElementById("namespace-select");
  if (select) {
    select.addEventListener("change", () => { location.href = "/ns/" + encodeURIComponent(select.value) + "/"; });
  }
  if (!view) return;

  const dot = document.getElementById("live-state");
  const label = document.getElementById("live-label");
  const deferred = new Map();
  let after = body.dataset.after || "";
  let source = null;

  function setState(state) {
    dot.dataset.state = state;
    label.textContent = state;
  }

  function typingIn(element) {
    const active = document.activeElement;
    return active && active !== body && element.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function swap(id, html) {
    const element = document.getElementById(id);
    if (!element) return;
    if (typingIn(element)) {
      deferred.set(id, html);
      return;
    }
    element.innerHTML = html;
  }

  document.addEventListener("focusout", () => {
    setTimeout(() => {  // after the focus moved on
      for (const [id, html] of [...deferred]) {
        const element = document.getElementById(id);
        if (element && !typingIn(element)) {
          deferred.delete(id);
          element.innerHTML = html;
        }
      }
    }, 0);
  });

  function connect() {
    const query = new URLSearchParams({ view });
    if (view === "events" && after) query.set("after", after);
    source = new EventSource("/ns/" + encodeURIComponent(namespace) + "/live?" + query.toString());
    source.onopen = () => setState("live");
    source.onerror = () => {
      // Reconnect ourselves, so that the events page asks for what it missed since `after`.
      setState("reconnecting");
      source.close();
      setTimeout(connect, 1000);
    };
    source.addEventListener("fragments", (message) => {
      const parts = JSON.parse(message.data);
      for (const [id, html] of Object.entries(parts)) swap(id, html);
      body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
    });
    source.addEventListener("events", (message) => {
      const update = JSON.parse(message.data);
      after = update.last;
      const rows = document.getElementById("event-rows");
      if (!rows) return;
      rows.insertAdjacentHTML("afterbegin", update.html);
      while (rows.rows.length > 500) rows.deleteRow(-1);
    });
  }

  connect();
})();
