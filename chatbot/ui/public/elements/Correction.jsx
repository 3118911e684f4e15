// Afina's correction editor, shown under an answer: pre-filled with the answer (or the saved
// correction), saved through the "save_correction" action; never a message in the chat.
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Textarea } from "@/components/ui/textarea";

export default function Correction() {
  const labels = props.labels || {};
  const [saved, setSaved] = useState(props.correction || "");
  const [draft, setDraft] = useState(props.correction || props.answer || "");
  const [editing, setEditing] = useState(false);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState("");

  async function save() {
    setBusy(true);
    setNote("");
    try {
      const reply = await callAction({
        name: "save_correction",
        payload: { message_id: props.messageId, text: draft },
      });
      const result = (reply && reply.response) || {};
      if (result.ok) {
        setSaved(draft.trim());
        setEditing(false);
        setNote(labels.saved || "Saved.");
      } else {
        setNote(result.message || labels.failed || "Not saved.");
      }
    } catch (error) {
      setNote(labels.failed || "Not saved.");
    } finally {
      setBusy(false);
    }
  }

  if (editing) {
    return (
      <div className="afina-correction flex flex-col gap-2 w-full" data-testid="correction-editor">
        <label className="text-sm font-medium" htmlFor={"correction-" + props.messageId}>
          {labels.prompt}
        </label>
        <Textarea
          id={"correction-" + props.messageId}
          data-testid="correction-text"
          className="min-h-[120px]"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
        <div className="flex gap-2">
          <Button size="sm" data-testid="correction-save" disabled={busy} onClick={save}>
            {labels.save}
          </Button>
          <Button size="sm" variant="outline" disabled={busy} onClick={() => setEditing(false)}>
            {labels.cancel}
          </Button>
        </div>
        {note ? <p className="text-sm text-red-600" role="alert">{note}</p> : null}
      </div>
    );
  }
  return (
    <div className="afina-correction flex flex-col gap-2 w-full" data-testid="correction">
      {saved ? (
        <div className="rounded-md border-l-4 border-green-600 bg-muted p-2 text-sm" data-testid="correction-saved">
          <div className="font-medium">{labels.heading}</div>
          <div className="whitespace-pre-wrap">{saved}</div>
        </div>
      ) : null}
      <div className="flex items-center gap-2">
        <Button
          size="sm"
          variant="outline"
          data-testid="correction-open"
          onClick={() => {
            setDraft(saved || props.answer || "");
            setNote("");
            setEditing(true);
          }}
        >
          {saved ? labels.edit : labels.open}
        </Button>
        {note ? <span className="text-sm text-muted-foreground" role="status">{note}</span> : null}
      </div>
    </div>
  );
}
