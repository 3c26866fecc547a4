// esbuild's "text" loader: CSS files are imported as strings and injected as a <style>.
declare module "*.css" {
  const text: string;
  export default text;
}
