/** Ends the run with one plain line, "Tests: N passed, N failed, N skipped", that CI and people can read. */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const broken = results.numRuntimeErrorTestSuites;
    const suites = broken > 0 ? ` (${broken} test files failed to run)` : '';
    process.stdout.write(
      `\nTests: ${results.numPassedTests} passed, ${results.numFailedTests + broken} failed, ${skipped} skipped${suites}\n`,
    );
  }
}
