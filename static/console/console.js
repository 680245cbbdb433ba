/* The agent console: live queue, own chats with unread counts, several chat panes at once. */
"use strict";

(() => {
  const root = document.getElementById("console");
  const queueList = document.getElementById("queue-list");
  const offerList = document.getElementById("offer-list");
  const chatList = document.getElementById("chat-list");
  const tabs = document.getElementById("tabs");
  const panes = document.getElementById("panes");
  const emptyPane = document.getElementById("empty-pane");
  const toast = document.getElementById("toast");
  const presence = document.getElementById("presence");
  const paneTemplate = document.getElementById("pane-template");

  const chats = new Map(); // chat id -> {id, info, lastSeq, unread, pane, tab, open, held}
  const outbox = new Map(); // client_id -> frame
  const offers = new Map(); // offer id -> offer frame, with `until` (local clock) for hunts
  let activeChat = null;

  function showToast(text) {
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(() => { toast.hidden = true; }, 6000);
  }

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "dataset") Object.assign(node.dataset, v); else node[k] = v;
    }
    node.append(...children);
    return node;
  }

  function minutes(seconds) {
    if (seconds < 60) return `${seconds}s`;
    return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  }

  function renderQueue(items) {
    queueList.replaceChildren();
    document.getElementById("queue-count").textContent = items.length;
    if (!items.length) { queueList.append(el("li", { className: "empty", textContent: "No chats waiting." })); return; }
    for (const q of items) {
      const take = el("button", { type: "button", textContent: "Take", className: "take-btn" });
      take.addEventListener("click", () => { take.disabled = true; socket.send({ type: "take", chat: q.chat }); });
      const path = q.tier_path.join(" → ");
      const details = [
        el("strong", { textContent: q.visitor }),
        el("span", { className: "muted small", textContent: ` · ${q.topic}` }),
        el("div", { className: "muted small", textContent: `#${q.position} in ${q.team} · waiting ${minutes(q.waited_seconds)} · ${path}` }),
      ];
      if (q.handover) {
        details.push(el("div", { className: "small handover-line", textContent: `From ${q.handover.from_agent || q.handover.requested_by}${q.handover.reason ? ` · ${q.handover.reason}` : ""}${q.handover.note ? `: ${q.handover.note}` : ""}` }));
      }
      const info = el("div", { className: "queue-info", title: "Preview the transcript" }, details);
      info.addEventListener("click", () => openChat(q.chat));
      queueList.append(el("li", { className: "queue-item", dataset: { chat: q.chat } }, [info, take]));
    }
  }

  function setOffers(list) {
    offers.clear();
    for (const o of list || []) addOffer(o);
    renderOffers();
  }

  function addOffer(o) {
    // The countdown runs on this browser's clock from the seconds left when the server sent it.
    offers.set(o.offer, { ...o, until: o.accept_seconds === null ? null : Date.now() + o.accept_seconds * 1000 });
  }

  function secondsLeft(o) { return Math.max(0, Math.ceil((o.until - Date.now()) / 1000)); }

  function renderOffers() {
    offerList.replaceChildren();
    document.getElementById("offers-count").textContent = offers.size;
    if (!offers.size) { offerList.append(el("li", { className: "empty", textContent: "No offers." })); return; }
    for (const o of offers.values()) {
      const accept = el("button", { type: "button", textContent: "Accept", className: "accept-btn" });
      const decline = el("button", { type: "button", textContent: "Decline", className: "secondary decline-btn" });
      accept.addEventListener("click", () => { accept.disabled = decline.disabled = true; socket.send({ type: "offer.accept", offer: o.offer, ref: `offer-${o.offer}` }); });
      decline.addEventListener("click", () => { accept.disabled = decline.disabled = true; socket.send({ type: "offer.decline", offer: o.offer, ref: `offer-${o.offer}` }); });
      const details = [
        el("strong", { textContent: o.visitor }),
        el("span", { className: "muted small", textContent: ` · ${o.topic}` }),
        el("div", { className: "muted small", textContent: `${o.team} · ${o.tier_path.join(" → ")} · waiting ${minutes(o.waited_seconds)}` }),
      ];
      if (o.note) details.push(el("div", { className: "small handover-line", textContent: `Note: ${o.note}` }));
      if (o.until !== null) details.push(el("div", { className: "small offer-countdown", textContent: `${secondsLeft(o)} s to accept` }));
      offerList.append(el("li", { className: "queue-item offer-item", dataset: { offer: o.offer, chat: o.chat, policy: o.policy } }, [
        el("div", { className: "queue-info" }, details), el("div", { className: "offer-actions" }, [accept, decline]),
      ]));
    }
  }

  function tickOffers() {
    for (const li of offerList.querySelectorAll(".offer-item")) {
      const o = offers.get(Number(li.dataset.offer));
      const countdown = li.querySelector(".offer-countdown");
      if (o && countdown) countdown.textContent = `${secondsLeft(o)} s to accept`;
    }
  }

  function renderChatList(rows) {
    const held = new Set(rows.map((r) => r.chat));
    for (const row of rows) {
      const c = ensureChat(row.chat);
      c.held = true;
      // The chat on screen is read: the server's count may predate our last "read".
      c.unread = c.id === activeChat && !document.hidden ? 0 : row.unread;
      c.summary = row;
    }
    for (const c of chats.values()) if (!held.has(c.id)) c.held = false;
    drawChatList();
  }

  function drawChatList() {
    chatList.replaceChildren();
    const held = [...chats.values()].filter((c) => c.held);
    document.getElementById("chats-count").textContent = held.length;
    if (!held.length) { chatList.append(el("li", { className: "empty", textContent: "You hold no chats." })); return; }
    for (const c of held) {
      const name = (c.info && c.info.visitor) || (c.summary && c.summary.visitor) || `Chat ${c.id}`;
      const topic = (c.info && c.info.topic) || (c.summary && c.summary.topic) || "";
      const badge = el("span", { className: "badge", textContent: c.unread ? String(c.unread) : "" });
      badge.hidden = !c.unread;
      const item = el("li", { className: `chat-item${c.id === activeChat ? " active" : ""}`, dataset: { chat: c.id, unread: c.unread || 0 } }, [
        el("span", {}, [el("strong", { textContent: name }), el("span", { className: "muted small", textContent: ` · ${topic}` })]),
        badge,
      ]);
      item.addEventListener("click", () => openChat(c.id));
      chatList.append(item);
    }
  }

  function ensureChat(id) {
    if (!chats.has(id)) chats.set(id, { id, info: null, lastSeq: 0, unread: 0, pane: null, tab: null, held: false });
    return chats.get(id);
  }

  function buildPane(c) {
    const pane = paneTemplate.content.firstElementChild.cloneNode(true);
    pane.dataset.chat = c.id;
    const form = pane.querySelector("form.composer");
    const textarea = form.querySelector("textarea");
    textarea.maxLength = Number(root.dataset.maxChars);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = textarea.value.trim();
      pane.querySelector(".composer-error").textContent = "";
      if (!text) return;
      const frame = { type: "message", chat: c.id, text, internal: form.querySelector(".internal").checked, client_id: Tierline.newClientId() };
      outbox.set(frame.client_id, frame);
      socket.send(frame);
      textarea.value = "";
    });
    textarea.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
    pane.querySelector(".esc-btn").addEventListener("click", () => {
      socket.send({ type: "escalation.options", chat: c.id });
    });
    const dialog = pane.querySelector(".esc-dialog");
    pane.querySelector(".esc-cancel").addEventListener("click", () => dialog.close());
    pane.querySelector(".esc-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const picked = dialog.querySelector("input[name=target]:checked");
      const errorEl = dialog.querySelector(".esc-error");
      if (!picked) { errorEl.textContent = "Choose a target."; return; }
      errorEl.textContent = "";
      c.pendingEscalation = true;
      socket.send({ type: "escalate", chat: c.id, target: picked.value,
        reason: dialog.querySelector(".esc-reason").value, note: dialog.querySelector(".esc-note").value });
    });
    pane.querySelector(".end-btn").addEventListener("click", () => {
      if (confirm("End this chat as resolved?")) socket.send({ type: "end", chat: c.id });
    });
    const tab = el("button", { type: "button", className: "tab", dataset: { chat: c.id } }, [
      el("span", { className: "tab-name", textContent: `Chat ${c.id}` }),
      el("span", { className: "tab-close", textContent: "×", title: "Close tab" }),
    ]);
    tab.addEventListener("click", (e) => {
      if (e.target.classList.contains("tab-close")) closeTab(c.id); else openChat(c.id);
    });
    tabs.append(tab);
    panes.append(pane);
    c.pane = pane;
    c.tab = tab;
  }

  function openChat(id) {
    const c = ensureChat(id);
    if (!c.pane) {
      buildPane(c);
      socket.send({ type: "subscribe", chat: id, since: 0 });
    }
    activeChat = id;
    emptyPane.hidden = true;
    for (const other of chats.values()) {
      if (other.pane) other.pane.hidden = other.id !== id;
      if (other.tab) other.tab.classList.toggle("active", other.id === id);
    }
    markRead(c);
    drawChatList();
  }

  function closeTab(id) {
    const c = chats.get(id);
    if (!c || !c.pane) return;
    c.pane.remove(); c.tab.remove(); c.pane = null; c.tab = null; c.lastSeq = 0;
    if (activeChat === id) {
      activeChat = null;
      const next = [...chats.values()].find((o) => o.pane);
      if (next) openChat(next.id); else emptyPane.hidden = false;
    }
  }

  function markRead(c) {
    if (c.held && c.lastSeq) socket.send({ type: "read", chat: c.id, seq: c.lastSeq });
    c.unread = 0;
  }

  function showOptions(f) {
    const c = chats.get(f.chat);
    if (!c || !c.pane) return;
    const dialog = c.pane.querySelector(".esc-dialog");
    const box = dialog.querySelector(".esc-targets");
    box.replaceChildren(el("legend", { textContent: "Target" }));
    if (!f.options.length) box.append(el("p", { className: "muted", textContent: "No escalation targets are configured for this stage." }));
    for (const o of f.options) {
      const input = el("input", { type: "radio", name: "target", value: o.keyword });
      input.dataset.noteRequired = o.note_required;
      box.append(el("label", { className: "inline esc-target" }, [
        input,
        el("span", { textContent: `${o.label} · ${o.tier} · ${o.available} online and free` }),
        el("code", { className: "muted small", textContent: ` /escalate ${o.keyword}` }),
      ]));
    }
    const reason = dialog.querySelector(".esc-reason");
    reason.replaceChildren(el("option", { value: "", textContent: "(none)" }), ...f.reasons.map((r) => el("option", { value: r, textContent: r })));
    dialog.querySelector(".esc-error").textContent = "";
    if (!dialog.open) dialog.showModal();
  }

  function showHandover(c, h) {
    const box = c.pane.querySelector(".handover");
    if (!h) { box.hidden = true; return; }
    box.hidden = false;
    box.replaceChildren(
      el("strong", { textContent: `Handed over from ${h.from_agent || h.requested_by} (${h.from_stage}, ${h.from_tier}) to ${h.to}` }),
      el("div", { textContent: h.reason ? `Reason: ${h.reason}` : "No reason given" }),
      el("div", { className: "note", textContent: h.note ? `Note: ${h.note}` : "No note" }),
    );
  }

  function showTimeline(c, flow) {
    const list = c.pane.querySelector(".timeline ol");
    list.replaceChildren(...(flow || []).map((f) => el("li", {}, [
      el("time", { dateTime: f.at, textContent: Tierline.formatTime(f.at) }), el("span", { textContent: ` ${f.text}` }),
    ])));
  }

  function applyInfo(info) {
    const c = ensureChat(info.chat);
    c.info = info;
    if (!c.pane) return;
    c.pane.querySelector(".pane-title").textContent = `${info.visitor} · ${info.topic}`;
    c.tab.querySelector(".tab-name").textContent = info.visitor;
    const meta = [info.email || "no e-mail", `path: ${info.tier_path.join(" → ") || "–"}`];
    if (info.context && info.context.page) meta.push(`page: ${info.context.page}`);
    if (info.context && info.context.user_agent) meta.push(info.context.user_agent.slice(0, 80));
    c.pane.querySelector(".pane-meta").textContent = meta.join(" · ");
    showHandover(c, info.handover);
    showTimeline(c, info.flow);
    setPaneStatus(c, info.status, info.agent_id === Number(root.dataset.agent));
  }

  function setPaneStatus(c, status, held) {
    if (!c.pane) return;
    const open = (status === "queued" || status === "active") && held;
    c.pane.dataset.status = status;
    c.pane.querySelector("form.composer").hidden = !open;
    c.pane.querySelector(".end-btn").hidden = !open;
    c.pane.querySelector(".esc-btn").hidden = !open;
    const banner = c.pane.querySelector(".pane-banner");
    banner.hidden = open;
    if (!open) banner.textContent = status === "queued" ? "Waiting in the queue: take it to reply." : held ? "" : `This chat is ${status}.`;
  }

  function addMessage(m) {
    const c = ensureChat(m.chat);
    if (m.client_id) outbox.delete(m.client_id);
    if (!c.pane) { if (m.kind === "visitor" && c.held) { c.unread += 1; drawChatList(); } return; }
    if (m.seq <= c.lastSeq) return;
    if (m.seq > c.lastSeq + 1) { socket.send({ type: "resume", chat: c.id, since: c.lastSeq }); return; }
    c.lastSeq = m.seq;
    const list = c.pane.querySelector(".transcript");
    Tierline.appendMessage(list, m);
    list.scrollTop = list.scrollHeight;
    if (m.kind === "visitor") {
      if (activeChat === c.id && !document.hidden) { markRead(c); drawChatList(); } else { c.unread += 1; drawChatList(); }
    }
  }

  const socket = new Tierline.ReconnectingSocket({
    url: () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/console/`,
    stateEl: document.getElementById("conn"),
    onOpen: () => {
      for (const c of chats.values()) if (c.pane) socket.send({ type: "subscribe", chat: c.id, since: c.lastSeq });
      outbox.forEach((frame) => socket.send(frame));
    },
    onFrame: (f) => {
      switch (f.type) {
        case "hello":
          presence.value = f.agent.presence;
          root.dataset.presence = f.agent.presence;
          renderQueue(f.queue);
          renderChatList(f.chats);
          setOffers(f.offers);
          break;
        // After a queue change the server sends the queue alone; asked for ("queue"), all lists.
        case "queue": renderQueue(f.items); if (f.chats) renderChatList(f.chats); if (f.offers) setOffers(f.offers); break;
        case "offer": addOffer(f); renderOffers(); break;
        case "offer.closed": offers.delete(f.offer); renderOffers(); break;
        case "presence": presence.value = f.presence; root.dataset.presence = f.presence; break;
        case "chat.info": applyInfo(f); break;
        case "message": addMessage(f); break;
        case "replay.done": {
          if (f.more) { socket.send({ type: "resume", chat: f.chat, since: f.last }); break; }
          const c = chats.get(f.chat);
          if (c && activeChat === c.id) { markRead(c); drawChatList(); }
          break;
        }
        case "taken": if (f.offer) { offers.delete(f.offer); renderOffers(); } openChat(f.chat); socket.send({ type: "queue" }); break;
        case "chat.assigned": {
          const c = ensureChat(f.chat); c.held = true;
          socket.send({ type: "queue" });
          if (c.pane) socket.send({ type: "subscribe", chat: c.id, since: c.lastSeq }); else if (activeChat === null) openChat(c.id);
          break;
        }
        case "chat.removed": {
          const c = ensureChat(f.chat); c.held = false;
          setPaneStatus(c, f.handed_over_to ? "queued" : (c.pane ? c.pane.dataset.status : "ended"), false);
          if (c.pane && f.handed_over_to) {
            const banner = c.pane.querySelector(".pane-banner");
            banner.hidden = false;
            banner.textContent = `Handed over to ${f.handed_over_to}.`;
            c.pane.dataset.handedOver = "true";
          }
          socket.send({ type: "queue" });
          break;
        }
        case "escalation.options": showOptions(f); break;
        case "escalated": {
          const c = chats.get(f.chat);
          if (f.client_id) outbox.delete(f.client_id);
          if (c && c.pane) {
            const dialog = c.pane.querySelector(".esc-dialog");
            if (dialog.open) dialog.close();
            c.pane.querySelector(".command-result").textContent = f.text;
          }
          break;
        }
        case "command.result": {
          if (f.client_id) outbox.delete(f.client_id);
          const c = chats.get(f.chat);
          if (c && c.pane) c.pane.querySelector(".command-result").textContent = f.text; else showToast(f.text);
          break;
        }
        case "chat.status": {
          const c = ensureChat(f.chat);
          if (c.pane && c.pane.dataset.handedOver === "true" && !c.held) break;
          setPaneStatus(c, f.status, c.held && f.status === "active");
          break;
        }
        case "ack": outbox.delete(f.client_id); break;
        case "error": {
          if (typeof f.ref === "string" && f.ref.startsWith("offer-")) {
            // The offer is gone (taken by someone else, lapsed ...): say so and drop it.
            showToast(f.message);
            if (f.code !== "rate_limited" && f.code !== "not_online" && f.code !== "at_capacity") offers.delete(Number(f.ref.slice(6)));
            renderOffers();
            break;
          }
          if (f.code === "rate_limited" && f.ref && outbox.has(f.ref)) { setTimeout(() => socket.send(outbox.get(f.ref)), 1500); break; }
          const frame = f.ref && outbox.get(f.ref);
          if (frame) outbox.delete(f.ref);
          const c = (frame && chats.get(frame.chat)) || (activeChat !== null && chats.get(activeChat));
          const dialog = c && c.pane && c.pane.querySelector(".esc-dialog");
          if (dialog && dialog.open) dialog.querySelector(".esc-error").textContent = f.message;
          else if (c && c.pane) c.pane.querySelector(".composer-error").textContent = f.message;
          else showToast(f.message);
          queueList.querySelectorAll("button.take-btn").forEach((b) => { b.disabled = false; });
          break;
        }
      }
    },
  });

  presence.addEventListener("change", () => socket.send({ type: "presence", presence: presence.value }));
  document.addEventListener("visibilitychange", () => { if (!document.hidden && activeChat) markRead(chats.get(activeChat)); });
  setInterval(() => socket.send({ type: "queue" }), 15000); // refresh "waiting for" times
  // "Still here": an agent whose every console tab is closed or silent for AGENT_GONE_SECONDS is
  // set offline so that no chat is routed to them.
  setInterval(() => socket.send({ type: "ping" }), 20000);
  setInterval(tickOffers, 1000);
})();
