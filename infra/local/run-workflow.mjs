// Runs one state machine of infra/template.yaml locally, with its Task states calling the real
// function code.
//
//   node run-workflow.mjs --state-machine PreviewBranchStateMachine --input '{"...": ...}'
//        [--template infra/template.yaml] [--lambda-host http://127.0.0.1:PORT]
//        [--parameter Name=Value ...] [--retry-interval-ms N] [--notifications FILE]
//        [--trace true]
//
// The definition is read from the template's DefinitionUri with its DefinitionSubstitutions
// applied as CloudFormation would (function ARNs, the topic ARN, parameters). It runs under
// aws-local-stepfunctions (an ASL interpreter); every Task state whose Resource is one of the
// template's functions is sent to the Lambda Invoke API at --lambda-host (`lambda-host`, which
// runs the function's real bootstrap binary); `sns:publish` tasks (the failure notifications)
// and `events:putEvents` tasks (the events out) are recorded and printed. Prints one JSON object: status, output or error and cause, the
// states entered, retries, catches and notifications (with --trace true, every state's input
// and output too); exits 0 when the execution succeeded.

import { readFileSync, appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve, join } from 'node:path';

const tools = process.env.FERRY_TOOLS_NPM;
if (!tools) {
  console.error('run-workflow: FERRY_TOOLS_NPM (the npm prefix dev/setup installed into) is not set');
  process.exit(2);
}
const require = createRequire(join(tools, 'package.json'));
const { StateMachine } = require('aws-local-stepfunctions');
const YAML = require('yaml');

function parseArgs(argv) {
  const args = { parameters: {}, template: 'infra/template.yaml' };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${name} needs a value`);
    switch (name) {
      case '--template': args.template = value; break;
      case '--state-machine': args.stateMachine = value; break;
      case '--input': args.input = JSON.parse(value); break;
      case '--lambda-host': args.lambdaHost = value; break;
      case '--retry-interval-ms': args.retryIntervalMs = Number(value); break;
      case '--notifications': args.notifications = value; break;
      case '--trace': args.trace = value === 'true'; break;
      case '--parameter': {
        const at = value.indexOf('=');
        if (at < 1) throw new Error(`--parameter ${value}: expected Name=Value`);
        args.parameters[value.slice(0, at)] = value.slice(at + 1);
        break;
      }
      default: throw new Error(`unknown argument ${name}`);
    }
  }
  if (!args.stateMachine) throw new Error('--state-machine LOGICAL_ID is required');
  if (args.input === undefined) throw new Error('--input JSON is required');
  args.lambdaHost ??= process.env.FERRY_LAMBDA_HOST;
  if (!args.lambdaHost) throw new Error('--lambda-host URL (or FERRY_LAMBDA_HOST) is required');
  return args;
}

// CloudFormation's short-form tags, read into their long forms.
const intrinsic = (tag, fn) => ['scalar', 'seq', 'map'].map((kind) => ({
  tag,
  collection: kind === 'scalar' ? undefined : kind,
  resolve: (value) => {
    const plain = value && typeof value.toJSON === 'function' ? value.toJSON() : value;
    if (fn === 'Fn::GetAtt' && typeof plain === 'string') return { [fn]: plain.split('.') };
    return { [fn]: plain };
  },
}));
const customTags = [
  ['!Ref', 'Ref'], ['!Sub', 'Fn::Sub'], ['!GetAtt', 'Fn::GetAtt'], ['!Join', 'Fn::Join'],
  ['!If', 'Fn::If'], ['!Equals', 'Fn::Equals'], ['!Not', 'Fn::Not'], ['!And', 'Fn::And'],
  ['!Or', 'Fn::Or'], ['!Select', 'Fn::Select'], ['!Split', 'Fn::Split'],
  ['!FindInMap', 'Fn::FindInMap'], ['!Condition', 'Condition'], ['!GetAZs', 'Fn::GetAZs'],
].flatMap(([tag, fn]) => intrinsic(tag, fn));

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
const STACK = 'ferry-local';

function loadTemplate(path, overrides) {
  const template = YAML.parse(readFileSync(path, 'utf8'), { customTags });
  const parameters = {};
  for (const [name, p] of Object.entries(template.Parameters ?? {})) {
    if (name in overrides) parameters[name] = overrides[name];
    else if (p.Default !== undefined) parameters[name] = String(p.Default);
  }
  for (const name of Object.keys(overrides)) {
    if (!(name in parameters)) throw new Error(`--parameter ${name}: the template has no such parameter`);
  }
  return { template, parameters };
}

// The ARN CloudFormation would give a resource, and which binary a function runs.
function resourceArn(template, logicalId) {
  const resource = template.Resources?.[logicalId];
  if (!resource) throw new Error(`the template has no resource ${logicalId}`);
  switch (resource.Type) {
    case 'AWS::Serverless::Function':
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${STACK}-${logicalId}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${REGION}:${ACCOUNT}:${STACK}-${logicalId}`;
    case 'AWS::S3::Bucket':
      return `${STACK}-${logicalId}`.toLowerCase();
    default:
      throw new Error(`run-workflow cannot stand in for ${logicalId} (${resource.Type})`);
  }
}

function condition(value, ctx) {
  if (value && typeof value === 'object') {
    if ('Condition' in value) return condition(ctx.template.Conditions?.[value.Condition], ctx);
    if ('Fn::Equals' in value) {
      const [a, b] = value['Fn::Equals'];
      return resolveValue(a, ctx) === resolveValue(b, ctx);
    }
    if ('Fn::Not' in value) return !condition(value['Fn::Not'][0], ctx);
    if ('Fn::And' in value) return value['Fn::And'].every((c) => condition(c, ctx));
    if ('Fn::Or' in value) return value['Fn::Or'].some((c) => condition(c, ctx));
  }
  throw new Error(`cannot evaluate the condition ${JSON.stringify(value)}`);
}

function resolveValue(value, ctx) {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object') {
    if ('Fn::If' in value) {
      const [name, yes, no] = value['Fn::If'];
      return resolveValue(condition({ Condition: name }, ctx) ? yes : no, ctx);
    }
    if ('Ref' in value) {
      const name = value.Ref;
      if (name === 'AWS::Region') return REGION;
      if (name === 'AWS::AccountId') return ACCOUNT;
      if (name === 'AWS::StackName') return STACK;
      if (name in ctx.parameters) return ctx.parameters[name];
      return resourceArn(ctx.template, name);
    }
    if ('Fn::GetAtt' in value) {
      const [logicalId, attribute] = value['Fn::GetAtt'];
      if (!['Arn', 'TopicArn'].includes(attribute)) throw new Error(`cannot resolve ${logicalId}.${attribute}`);
      return resourceArn(ctx.template, logicalId);
    }
    if ('Fn::Sub' in value && typeof value['Fn::Sub'] === 'string') {
      return value['Fn::Sub'].replace(/\$\{([^}!]+)\}/g, (_, name) => {
        if (name.includes('.')) {
          const [logicalId, attribute] = name.split('.');
          return resolveValue({ 'Fn::GetAtt': [logicalId, attribute] }, ctx);
        }
        return resolveValue({ Ref: name }, ctx);
      });
    }
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

function tasksOf(states, out = []) {
  for (const [name, state] of Object.entries(states ?? {})) {
    if (state.Type === 'Task') out.push([name, state]);
    if (state.Type === 'Map') tasksOf((state.ItemProcessor ?? state.Iterator)?.States, out);
    if (state.Type === 'Parallel') for (const branch of state.Branches ?? []) tasksOf(branch.States, out);
  }
  return out;
}

function statesWithRetry(states, out = []) {
  for (const [name, state] of Object.entries(states ?? {})) {
    if (state.Retry) out.push(name);
    if (state.Type === 'Map') statesWithRetry((state.ItemProcessor ?? state.Iterator)?.States, out);
    if (state.Type === 'Parallel') for (const branch of state.Branches ?? []) statesWithRetry(branch.States, out);
  }
  return out;
}

async function invoke(host, binary, payload) {
  const response = await fetch(`${host}/2015-03-31/functions/${binary}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const body = await response.json();
  if (response.status !== 200) {
    const error = new Error(JSON.stringify(body));
    error.name = response.status === 404 ? 'Lambda.ResourceNotFoundException' : 'Lambda.ServiceException';
    throw error;
  }
  if (response.headers.get('x-amz-function-error')) {
    // As Step Functions reports a Lambda function error: its errorType, and the error as Cause.
    const error = new Error(JSON.stringify(body));
    error.name = body.errorType || 'Lambda.Unknown';
    throw error;
  }
  return body;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const templatePath = resolve(args.template);
  const { template, parameters } = loadTemplate(templatePath, args.parameters);
  const machine = template.Resources?.[args.stateMachine];
  if (machine?.Type !== 'AWS::Serverless::StateMachine') {
    throw new Error(`${args.stateMachine} is not an AWS::Serverless::StateMachine of ${args.template}`);
  }
  const ctx = { template, parameters };
  let text = readFileSync(resolve(dirname(templatePath), machine.Properties.DefinitionUri), 'utf8');
  const substitutions = machine.Properties.DefinitionSubstitutions ?? {};
  const functions = new Map();
  for (const [name, value] of Object.entries(substitutions)) {
    const resolved = resolveValue(value, ctx);
    const logicalId = value?.['Fn::GetAtt']?.[0] ?? (typeof value?.Ref === 'string' ? value.Ref : undefined);
    const resource = logicalId && template.Resources?.[logicalId];
    if (resource?.Type === 'AWS::Serverless::Function') {
      // Every function is the one ferry-lambda binary; FERRY_FUNCTION names its job, which is
      // the function lambda-host runs.
      const job = resource.Properties?.Environment?.Variables?.FERRY_FUNCTION;
      if (resource.Metadata?.BuildProperties?.Binary !== 'ferry-lambda' || !job) {
        throw new Error(`${logicalId} is not ferry-lambda with a FERRY_FUNCTION`);
      }
      functions.set(resolved, job);
    }
    text = text.split('${' + name + '}').join(resolved);
  }
  const leftover = text.match(/\$\{[A-Za-z0-9_]+\}/);
  if (leftover) throw new Error(`${leftover[0]} has no DefinitionSubstitutions entry`);
  const definition = JSON.parse(text);

  const notifications = [];
  const events = [];
  const handlers = {};
  for (const [name, state] of tasksOf(definition.States)) {
    if (functions.has(state.Resource)) {
      const binary = functions.get(state.Resource);
      handlers[name] = (input) => invoke(args.lambdaHost, binary, input);
    } else if (state.Resource === 'arn:aws:states:::events:putEvents') {
      handlers[name] = (input) => {
        for (const entry of input.Entries ?? []) events.push({ state: name, ...entry });
        return { Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `local-${events.length}-${i}` })), FailedEntryCount: 0 };
      };
    } else if (state.Resource === 'arn:aws:states:::sns:publish') {
      handlers[name] = (input) => {
        const note = { state: name, topicArn: input.TopicArn, subject: input.Subject, message: input.Message };
        notifications.push(note);
        if (args.notifications) appendFileSync(args.notifications, JSON.stringify(note) + '\n');
        return { MessageId: `local-${notifications.length}` };
      };
    } else {
      throw new Error(`Task ${name}: the local runner cannot run Resource ${state.Resource}`);
    }
  }
  const retryIntervalOverrides = {};
  if (Number.isFinite(args.retryIntervalMs)) {
    for (const name of statesWithRetry(definition.States)) retryIntervalOverrides[name] = args.retryIntervalMs;
  }

  const stateMachine = new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } });
  const execution = stateMachine.run(args.input, {
    overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
    context: {
      Execution: {
        Id: `arn:aws:states:${REGION}:${ACCOUNT}:execution:${STACK}-${args.stateMachine}:local-${Date.now()}`,
        Name: `local-${Date.now()}`,
        Input: args.input,
        StartTime: new Date().toISOString(),
      },
      StateMachine: { Id: `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${STACK}-${args.stateMachine}`, Name: `${STACK}-${args.stateMachine}` },
    },
  });
  const states = [];
  const retries = [];
  const caught = [];
  const trace = [];
  const logs = (async () => {
    for await (const event of execution.eventLogs) {
      if (args.trace && event.state) trace.push({ event: event.type, state: event.state.name, input: event.state.input, output: event.state.output });
      if (event.type === 'StateEntered') states.push(event.state.name);
      if (event.type === 'StateRetried') retries.push(event.state.name);
      if (event.type === 'StateCaught') caught.push({ state: event.state.name, error: event.catch?.error ?? event.error });
    }
  })();
  let report;
  try {
    const output = await execution.result;
    report = { status: 'SUCCEEDED', output };
  } catch (e) {
    const cause = e.cause ?? e;
    report = { status: 'FAILED', error: cause.name, cause: cause.message };
  }
  await logs.catch(() => {});
  Object.assign(report, { states, retries, caught, notifications, events });
  if (args.trace) report.trace = trace;
  // exitCode, not exit(): a large report to a pipe must be written out in full first.
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  process.exitCode = report.status === 'SUCCEEDED' ? 0 : 1;
}

main().catch((e) => {
  console.error(`run-workflow: ${e.message}`);
  process.exitCode = 2;
});
