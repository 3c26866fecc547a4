// What the CAM view shows for a run without maps: how to record them.

export function CamEmpty(props: { run: string }) {
  return (
    <div class="ins-empty ins-cam-empty" data-testid="cam-empty">
      <h2>No class-activation or saliency maps in this run</h2>
      <p>
        Run <b>{props.run}</b> has no maps. Give <code>watch</code> a fixed batch of images to explain (the probe), and
        Insight records where the model looks every <code>cam_every</code> steps:
      </p>
      <pre>
        {`from tb_plugin_insight import InsightWriter

writer = InsightWriter("runs/my_experiment")
images, labels = next(iter(val_loader))        # a fixed batch, e.g. 16 images
writer.watch(model, probe=(images[:16], labels[:16]), cam_every=100,
             class_names=["cat", "dog", ...])   # optional
for step, (x, y) in enumerate(loader):
    ...                                          # train as usual
writer.close()`}
      </pre>
      <p class="ins-muted">
        The first maps are recorded at step 0, then every <code>cam_every</code> steps. Maps written while TensorBoard
        runs appear on the next reload.
      </p>
    </div>
  );
}
