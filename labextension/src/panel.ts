/**
 * The "ftkit runs" side panel: one table row per run, updated in place every
 * POLL_MS while the panel is visible (rows are patched, not rebuilt, so a
 * button under the pointer survives a refresh).
 */
import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { ACTIVE, IRunRow, listRuns } from './api';

export const POLL_MS = 2000;

export interface IRunsPanelOptions {
  openDashboard: (id: string) => Promise<unknown>;
  stop: (id: string) => Promise<unknown>;
  newNotebook: () => Promise<unknown>;
}

const COLUMNS = ['status', 'method', 'task', 'best', 'started'];

export class RunsPanel extends Widget {
  constructor(private options: IRunsPanelOptions) {
    super();
    this.addClass('ftkit-runs-panel');
    this.node.innerHTML = `
      <div class="ftkit-runs-header">
        <h2 class="ftkit-runs-title">ftkit runs</h2>
        <button class="jp-mod-styled jp-mod-accept ftkit-runs-new" title="A new notebook from ftkit's quickstart">New notebook</button>
      </div>
      <div class="ftkit-runs-message"></div>
      <table class="ftkit-runs-table">
        <thead><tr>${COLUMNS.map(c => `<th>${c}</th>`).join('')}<th></th></tr></thead>
        <tbody></tbody>
      </table>
      <div class="ftkit-runs-dir"></div>`;
    this.body = this.node.querySelector('tbody')!;
    this.message = this.node.querySelector('.ftkit-runs-message')!;
    this.dirLine = this.node.querySelector('.ftkit-runs-dir')!;
    this.node.querySelector('.ftkit-runs-new')!.addEventListener('click', () => {
      void this.options.newNotebook();
    });
  }

  /** Fetch the list once and patch the table. */
  async refresh(): Promise<void> {
    if (this.loading) {
      return;
    }
    this.loading = true;
    try {
      const data = await listRuns();
      this.render(data.runs);
      this.dirLine.textContent = `runs folder: ${data.runs_dir}`;
      this.message.textContent = data.runs.length
        ? ''
        : 'No runs yet. Start one from a fine-tuning notebook.';
      this.message.classList.remove('ftkit-runs-error');
    } catch (error) {
      this.message.textContent = `Could not list runs: ${(error as Error).message}`;
      this.message.classList.add('ftkit-runs-error');
    } finally {
      this.loading = false;
    }
  }

  protected onAfterShow(msg: Message): void {
    void this.refresh();
    this.timer = window.setInterval(() => {
      if (this.isVisible && !document.hidden) {
        void this.refresh();
      }
    }, POLL_MS);
  }

  protected onBeforeHide(msg: Message): void {
    window.clearInterval(this.timer);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private render(runs: IRunRow[]): void {
    const seen = new Set<string>();
    runs.forEach((run, index) => {
      seen.add(run.id);
      let row = this.rows.get(run.id);
      if (!row) {
        row = this.makeRow(run.id);
        this.rows.set(run.id, row);
      }
      if (this.body.children[index] !== row) {
        this.body.insertBefore(row, this.body.children[index] || null);
      }
      this.fill(row, run);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
  }

  private makeRow(id: string): HTMLTableRowElement {
    const row = document.createElement('tr');
    row.dataset.runId = id;
    row.classList.add('ftkit-run');
    for (const column of COLUMNS) {
      const cell = row.insertCell();
      cell.className = `ftkit-run-${column}`;
    }
    const actions = row.insertCell();
    actions.className = 'ftkit-run-actions';
    const dashboard = this.button('Dashboard', 'ftkit-run-dashboard', 'Open a console with this run\u2019s live dashboard');
    dashboard.addEventListener('click', () => void this.options.openDashboard(id));
    const stop = this.button('Stop', 'ftkit-run-stop', 'Stop after the current step (a checkpoint is saved)');
    stop.addEventListener('click', async () => {
      stop.disabled = true;
      try {
        await this.options.stop(id);
      } finally {
        void this.refresh();
      }
    });
    actions.append(dashboard, stop);
    return row;
  }

  private button(label: string, className: string, title: string): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = `jp-mod-styled ftkit-run-button ${className}`;
    button.textContent = label;
    button.title = title;
    return button;
  }

  private fill(row: HTMLTableRowElement, run: IRunRow): void {
    const set = (column: string, text: string, title = text) => {
      const cell = row.querySelector(`.ftkit-run-${column}`) as HTMLElement;
      if (cell.textContent !== text) {
        cell.textContent = text;
      }
      cell.title = title;
    };
    const progress =
      ACTIVE.includes(run.status) && run.steps !== null && run.max_steps
        ? ` ${run.steps}/${run.max_steps}`
        : '';
    set('status', run.status + progress, run.reason ? `${run.status}: ${run.reason}` : run.status);
    row.querySelector('.ftkit-run-status')!.setAttribute('data-status', run.status);
    row.dataset.status = run.status;
    set('method', run.method);
    set('task', run.task);
    const best = run.best;
    set(
      'best',
      best ? `${best.metric} ${formatNumber(best.value)}` : '',
      best ? `best ${best.metric}, at step ${best.step}` : 'no metric yet'
    );
    const started = new Date(run.started * 1000);
    set('started', formatStarted(started), `${started.toLocaleString()}\n${run.id}`);
    const stop = row.querySelector('.ftkit-run-stop') as HTMLButtonElement;
    const active = ACTIVE.includes(run.status);
    stop.hidden = !active;
    stop.disabled = !active || run.status === 'stopping';
  }

  private body: HTMLTableSectionElement;
  private message: HTMLElement;
  private dirLine: HTMLElement;
  private rows = new Map<string, HTMLTableRowElement>();
  private timer = 0;
  private loading = false;
}

function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(3);
}

/** "14:03" today, "Mar 4 14:03" before. */
function formatStarted(date: Date): string {
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === new Date().toDateString()) {
    return time;
  }
  return `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}
