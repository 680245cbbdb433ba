/* What the visitor page says when its chat is over (the banner under the heading), from the
   chat's status and who or what ended it (`chat.status` `by`, docs/protocol.md). */

const ENDED_BY = {
  agent: (agent) => (agent ? `${agent} ended the chat.` : "The agent ended the chat."),
  visitor: () => "You ended the chat.",
  visitor_gone: () => "The chat ended: your page stopped answering for too long.",
  timeout: () => "The chat ended: nobody could take it in time.",
  fallback: () => "The chat ended: nobody was available to take it.",
};

/** The banner's text: `status` is the chat's (or "left" when the visitor left the queue and a
    follow-up team has the chat now), `by` the end's cause if known, `agent` the last agent. */
export function endText(status, by, agent) {
  if (status === "left") return "You left the queue. We will get back to you.";
  const text = ENDED_BY[by];
  return text ? text(agent) : "This chat has ended.";
}
