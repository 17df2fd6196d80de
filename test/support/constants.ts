export const TEST_APP_ROLE = 'belay_app';
export const TEST_APP_PASSWORD = 'S3cret-pa55word-for-tests';
export const TEMPLATE_DB = 'belay_template';

export interface TestCluster {
  socketDir: string;
  port: number;
  superuser: string;
  binDir: string;
  root: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgCluster: TestCluster;
  }
}
