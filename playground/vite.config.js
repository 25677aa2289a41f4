// Builds the playground into dist/, which the Go package embeds.
//
// Every asset is emitted as a file under dist/assets (fonts stay inlined in the
// CSS as data: URLs) and loaded from the page's origin: nothing is fetched
// from a CDN. File names carry a content hash, so the Go server can cache them
// for a year; the hash depends only on the content, so a rebuild from the same
// package-lock.json gives the same files.
import { defineConfig } from 'vite';

const names = {
  entryFileNames: 'assets/[name]-[hash].js',
  // graphql-ws, which @graphiql/toolkit imports when a subscription first
  // runs, would be named after its folder ("dist"): name it after itself.
  chunkFileNames: (chunk) =>
    /[\\/]node_modules[\\/]graphql-ws[\\/]/.test(chunk.facadeModuleId ?? '') ? 'assets/graphql-ws-[hash].js' : 'assets/[name]-[hash].js',
  assetFileNames: 'assets/[name]-[hash][extname]',
};

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 5000,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: names,
      // React libraries mark modules "use client", which means nothing in a
      // browser-only bundle; drop that warning and keep the others.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
    },
  },
});
