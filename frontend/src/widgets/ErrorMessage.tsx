import { Component, type ComponentChildren } from "preact";

export function ErrorMessage(props: { title: string; message: string }) {
  return (
    <div class="ins-error" role="alert" data-testid="error">
      <strong>{props.title}</strong>
      <div class="ins-error-msg">{props.message}</div>
    </div>
  );
}

/** Catches render errors so the tab shows a message instead of a blank page. */
export class ErrorBoundary extends Component<{ children?: ComponentChildren }, { error: string | null }> {
  override state = { error: null as string | null };

  override componentDidCatch(error: unknown): void {
    this.setState({ error: error instanceof Error ? error.stack || error.message : String(error) });
  }

  override render() {
    if (this.state.error) {
      return (
        <div style={{ padding: "16px" }}>
          <ErrorMessage title="The Insight tab hit an unexpected error" message={this.state.error} />
        </div>
      );
    }
    return this.props.children;
  }
}
