/**
 * OpenTelemetry tracing through Temporal's interceptors (@temporalio/interceptors-opentelemetry): the client's calls
 * (StartWorkflow, SignalWorkflow, …), the workflow's run and the calls it makes (RunWorkflow, StartActivity,
 * StartChildWorkflow, …) and the activities (RunActivity), one trace from an API request's start to the last host
 * step, linked through the Temporal headers. Workflow spans are made in the sandbox and reach the exporter through the
 * interceptors' `exporter` sink.
 *
 * Configured by the standard OpenTelemetry environment: on when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, spans sent over OTLP/HTTP (protobuf or JSON: OTEL_EXPORTER_OTLP_PROTOCOL)
 * with OTEL_EXPORTER_OTLP_HEADERS, named by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; off otherwise, and when
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
 */
import { createRequire } from 'node:module';
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { envDetectorSync, Resource } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client/index.js';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/worker/index.js';
import { Client, type ClientInterceptors, type WorkflowClientInterceptor } from '@temporalio/client';
import type { OpenTelemetrySinks } from '@temporalio/interceptors-opentelemetry/lib/workflow/definitions.js';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';

/** The workflow interceptor module of the tracing: bundled with the workflows when tracing is on. */
export const tracingWorkflowModule = createRequire(import.meta.url).resolve(
  '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors',
);

export interface Tracing {
  readonly provider: BasicTracerProvider;
  readonly tracer: Tracer;
  readonly resource: Resource;
  readonly spanProcessor: SpanProcessor;
  /** For a Temporal Client: its workflow calls start spans and carry them to the workflow. */
  readonly clientInterceptor: WorkflowClientInterceptor;
  /** For a worker's activities: RunActivity spans, children of the workflow's StartActivity. */
  readonly activityInterceptors: ActivityInterceptorsFactory;
  /** For a worker of workflows: the `exporter` sink the workflow interceptors send their spans to. */
  readonly sinks: InjectedSinks<OpenTelemetrySinks>;
  /** Sends the spans still buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** The service name unless OTEL_SERVICE_NAME says otherwise. */
  serviceName: string;
  exporter: SpanExporter;
  /** Export each span as it ends (tests) instead of in batches. */
  simple?: boolean;
}

let globalContext = false;

/**
 * The interceptors carry a span from the client to the workflow and from the workflow to its activities in the
 * Temporal headers, through OpenTelemetry's global propagator (W3C trace context), and find the current span through
 * the global context manager: both are set once per process.
 */
function installGlobalContext(): void {
  if (globalContext) return;
  globalContext = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
}

export function createTracing(opts: TracingOptions): Tracing {
  installGlobalContext();
  // The SDK's own attributes, then the service name, then OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over both.
  const { attributes } = Resource.default()
    .merge(new Resource({ 'service.name': opts.serviceName }))
    .merge(envDetectorSync.detect());
  const resource = new Resource(attributes);
  const spanProcessor = opts.simple ? new SimpleSpanProcessor(opts.exporter) : new BatchSpanProcessor(opts.exporter);
  const provider = new BasicTracerProvider({ resource, spanProcessors: [spanProcessor] });
  const tracer = provider.getTracer('icn-orchestrator');
  return {
    provider,
    tracer,
    resource,
    spanProcessor,
    clientInterceptor: new OpenTelemetryWorkflowClientInterceptor({ tracer }),
    activityInterceptors: (ctx) => ({
      inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }),
      outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
    }),
    sinks: { exporter: makeWorkflowExporter(spanProcessor, resource) },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** Whether the OpenTelemetry environment asks for traces. */
export function tracingEnabled(env: Record<string, string | undefined>): boolean {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return (
    endpoint !== undefined &&
    endpoint !== '' &&
    env.OTEL_SDK_DISABLED?.toLowerCase() !== 'true' &&
    env.OTEL_TRACES_EXPORTER?.toLowerCase() !== 'none'
  );
}

let shared: Tracing | null | undefined;

/**
 * The process's tracing from its environment (undefined when off), made on first use: the first caller's service
 * name counts (the controller runs worker and API in one process). It is also the global tracer provider, for any
 * other instrumentation. Buffered spans are sent before the process exits.
 */
export function processTracing(serviceName: string): Tracing | undefined {
  if (shared === undefined) {
    shared = tracingEnabled(process.env) ? createTracing({ serviceName, exporter: new OTLPTraceExporter() }) : null;
    if (shared) {
      trace.setGlobalTracerProvider(shared.provider);
      const tracing = shared;
      let flushed = false;
      process.on('beforeExit', () => {
        if (flushed) return;
        flushed = true;
        void tracing.shutdown();
      });
    }
  }
  return shared ?? undefined;
}

/** The client with tracing interceptors added (the same client without tracing). */
export function withClientTracing(client: Client, tracing: Tracing | undefined): Client {
  if (!tracing) return client;
  return new Client({ ...client.options, interceptors: clientInterceptors(client.options.interceptors, tracing) });
}

/** Client interceptors with the tracing's added. */
export function clientInterceptors(base: ClientInterceptors | undefined, tracing: Tracing): ClientInterceptors {
  const workflow = base?.workflow;
  return { ...base, workflow: [...(Array.isArray(workflow) ? workflow : []), tracing.clientInterceptor] };
}
