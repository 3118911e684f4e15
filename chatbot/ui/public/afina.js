// Afina's page script (chatbot/ui/.chainlit/config.toml loads it on every chat page).
//
// Reload lands on the same chat: once a new chat's conversation is stored, the server sends
// {afina: "thread", id} through Chainlit's window message (chatbot/ui/turns.py); the address
// becomes <root>/thread/<id>, which reopens this conversation after a reload. Chainlit does
// the same itself only when it is served at "/", and Afina's chat lives at /chat.
(() => {
  const meta = document.querySelector('meta[property="og:root_path"]');
  const root = ((meta && meta.content) || "").replace(/\/+$/, "");
  const ID = /^[0-9a-f-]{36}$/;
  window.addEventListener("message", (event) => {
    const data = event.data;
    if (event.source !== window || event.origin !== window.location.origin) return;
    if (!data || data.afina !== "thread" || typeof data.id !== "string" || !ID.test(data.id)) {
      return;
    }
    const here = window.location.pathname.replace(/\/+$/, "");
    if (here !== root) return; // a reopened chat (or any other page) keeps its address
    window.history.replaceState(window.history.state, "", `${root}/thread/${data.id}`);
  });
})();
