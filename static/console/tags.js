/* A chat's tags in its pane: what the chat was about, from the admins' list. The agent holding
   the chat adds and removes them (the server sends `chat.tags` to every console that has the
   chat open); anyone else sees them, so the next tier reads them with the hand-over. */
import { el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { send } from "./link.js";

function setTags(c, ids) {
  send({ type: TO_SERVER.TAGS, chat: c.id, tags: ids });
}

/** Draw the chat's tags; `editable`: the agent holds the chat. */
export function showTags(c, editable) {
  const info = c.info;
  const box = c.pane?.querySelector(".chat-tags");
  if (!box || !info) return;
  const tags = info.tags || [];
  box.hidden = !editable && tags.length === 0;
  const ids = tags.map((t) => t.id);
  const items = tags.map((t) => {
    const remove = el("button", {
      type: "button",
      className: "link tag-remove",
      textContent: "×",
      hidden: !editable,
    });
    remove.setAttribute("aria-label", `Remove the tag ${t.name}`);
    remove.addEventListener("click", () =>
      setTags(
        c,
        ids.filter((id) => id !== t.id),
      ),
    );
    return el("li", { className: "tag" }, [t.name, remove]);
  });
  box.querySelector(".tag-list").replaceChildren(...items);
  const select = box.querySelector(".tag-add");
  const choices = (info.tag_choices || []).filter((t) => !ids.includes(t.id));
  select.replaceChildren(
    el("option", { value: "", textContent: "Add a tag…" }),
    ...choices.map((t) => el("option", { value: String(t.id), textContent: t.name })),
  );
  select.hidden = !editable || choices.length === 0;
  select.onchange = () => {
    if (select.value) setTags(c, [...ids, Number(select.value)]);
  };
  const hint = box.querySelector(".tag-hint");
  hint.textContent =
    editable && info.requires_tag && tags.length === 0 ? "Add a tag before you end this chat." : "";
}

/** `chat.tags`: the chat's tags changed (here or on another console). */
export function applyTags(c, frame, editable) {
  if (!c.info) return;
  c.info.tags = frame.tags;
  showTags(c, editable);
  // "Add a tag … before you end it." is answered now: not left under the reply box.
  const error = c.pane?.querySelector(".reply-error");
  if (error && frame.tags.length) error.textContent = "";
}
