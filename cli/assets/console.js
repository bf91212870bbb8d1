// The console's one script. Every action is a plain form and works without it; this adds:
// - the live carrier indicators: an element with data-poll="URL" is refreshed from URL (an HTML
//   fragment the server escaped) every 2 s while the page is visible;
// - copy buttons: data-copy="#id" copies that element's text;
// - a confirmation for forms whose button has data-confirm="question";
// - a "select all" box: data-select-all="NAME" ticks every checkbox named NAME.
// Served from the console's own origin: its Content-Security-Policy allows no inline script.
"use strict";

(function () {
  const POLL_MS = 2000;

  function poll(element) {
    const url = element.getAttribute("data-poll");
    let busy = false;
    async function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        // A redirect means the session ended (the sign-in page): stop, keep what is shown.
        if (response.redirected || !response.ok) {
          clearInterval(timer);
          return;
        }
        const html = await response.text();
        if (html !== element.innerHTML) element.innerHTML = html;
      } catch (e) {
        // The server is gone or restarting: try again at the next tick.
      } finally {
        busy = false;
      }
    }
    const timer = setInterval(refresh, POLL_MS);
  }

  async function copy(button) {
    const target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    const text = target.textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (e) {
      // No clipboard access (an insecure origin): select the text for Ctrl-C instead.
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: Ctrl-C";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-copy]").forEach((button) => {
      button.addEventListener("click", () => copy(button));
    });
    document.querySelectorAll("[data-select-all]").forEach((box) => {
      const name = box.getAttribute("data-select-all");
      box.addEventListener("change", () => {
        document.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((other) => {
          other.checked = box.checked;
        });
      });
    });
    document.querySelectorAll("button[data-confirm]").forEach((button) => {
      button.addEventListener("click", (event) => {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
