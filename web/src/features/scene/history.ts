/** Undo and redo of corrections. Each step remembers, per object, the fields as they were
 * and as they became; undoing sends the old values back as a new correction (an undo is
 * itself an event in the log), redoing sends the new ones again. Pure (unit-tested). */

export interface Fields {
  category?: string;
  materials?: string[];
  bbox?: [number, number, number, number];
}

export interface Edit {
  objectId: string;
  before: Fields;
  after: Fields;
}

export interface Step {
  label: string;
  edits: Edit[];
}

export class History {
  private done: Step[] = [];
  private undone: Step[] = [];

  constructor(private readonly limit = 200) {}

  get canUndo(): boolean {
    return this.done.length > 0;
  }

  get canRedo(): boolean {
    return this.undone.length > 0;
  }

  /** Record a step just applied; a new step forgets what was undone. */
  push(step: Step): void {
    if (step.edits.length === 0) return;
    this.done.push(step);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  /** The step to reverse (its edits with before and after swapped), or null. */
  undo(): Step | null {
    const step = this.done.pop();
    if (!step) return null;
    this.undone.push(step);
    return { label: `undo ${step.label}`, edits: step.edits.map((e) => ({ objectId: e.objectId, before: e.after, after: e.before })) };
  }

  /** The step to apply again, or null. */
  redo(): Step | null {
    const step = this.undone.pop();
    if (!step) return null;
    this.done.push(step);
    return { label: `redo ${step.label}`, edits: step.edits };
  }
}
