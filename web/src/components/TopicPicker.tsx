import { useState, type FormEvent } from "react";

interface Props {
  topics: readonly string[];
  onAdd: (topic: string) => void;
  onRemove: (topic: string) => void;
}

/** Subscriptions as removable chips plus a field to add a pattern (`ticks.*`, `trades.AAPL`). */
export function TopicPicker({ topics, onAdd, onRemove }: Props) {
  const [draft, setDraft] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const topic = draft.trim();
    if (!topic) return;
    onAdd(topic);
    setDraft("");
  };
  return (
    <form className="topics" onSubmit={submit} aria-label="Subscriptions">
      <ul className="chips">
        {topics.map((topic) => (
          <li key={topic} className="chip">
            {topic}
            <button type="button" aria-label={`Unsubscribe ${topic}`} onClick={() => onRemove(topic)}>
              ×
            </button>
          </li>
        ))}
      </ul>
      <input
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
        placeholder="ticks.AAPL, trades.*"
        aria-label="Topic pattern"
        title="Dot-separated tokens; * matches one token, a final > the rest"
      />
      <button type="submit" className="button">
        Subscribe
      </button>
    </form>
  );
}
