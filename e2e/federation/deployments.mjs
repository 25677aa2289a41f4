// A second, small Federation v2 subgraph for the federation test: GPU
// deployments that reference the facade's entities by the upstream ids they
// store, as another team's service would.
//
//   Deployment.imageVersion references ImageVersion by its `imageId` key and
//   Deployment.imageGroup references ImageGroup by its `groupId` key, so the
//   gateway resolves them with `_entities` calls to the facade.
//   ImageVersion.deploymentCount goes the other way: the facade owns
//   ImageVersion, and this subgraph adds a field to it (its key is
//   resolvable here, so the gateway calls this subgraph's `_entities`).
//
// Deployment.imageVersion is nullable: a deployment may name an image that
// no longer exists upstream, and the gateway must then give null there
// without failing the other deployments.
//
// It is built with @apollo/subgraph and served by @apollo/server's standalone
// server on 127.0.0.1 only.
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

export const typeDefs = parse(/* GraphQL */ `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

  "A running GPU instance started from a community image."
  type Deployment @key(fields: "id") {
    id: ID!
    name: String!
    gpu: String!
    "The image version it runs; null when that version no longer exists upstream."
    imageVersion: ImageVersion
    "The image group it was picked from."
    imageGroup: ImageGroup!
  }

  "Owned by the images subgraph; this one adds deploymentCount."
  type ImageVersion @key(fields: "imageId") {
    imageId: ID!
    "How many deployments run this version."
    deploymentCount: Int!
  }

  "Owned by the images subgraph; only referenced here."
  type ImageGroup @key(fields: "groupId", resolvable: false) {
    groupId: ID!
  }

  type Query {
    deployments: [Deployment!]!
  }
`);

/**
 * @typedef {{id: string, name: string, gpu: string, imageId: string, groupId: string}} DeploymentRow
 */

/**
 * buildDeploymentsSchema returns the subgraph schema over rows. It records
 * every representation the gateway asks it to resolve in `references`.
 *
 * @param {DeploymentRow[]} rows
 * @param {{typename: string, imageId?: string}[]} [references]
 */
export function buildDeploymentsSchema(rows, references = []) {
  const byId = new Map(rows.map((d) => [d.id, d]));
  const toGraph = (d) => ({
    id: d.id,
    name: d.name,
    gpu: d.gpu,
    imageVersion: { __typename: 'ImageVersion', imageId: d.imageId },
    imageGroup: { __typename: 'ImageGroup', groupId: d.groupId },
  });
  return buildSubgraphSchema({
    typeDefs,
    resolvers: {
      Query: {
        deployments: () => rows.map(toGraph),
      },
      Deployment: {
        __resolveReference: (ref) => {
          const d = byId.get(ref.id);
          return d ? toGraph(d) : null;
        },
      },
      ImageVersion: {
        __resolveReference: (ref) => {
          references.push({ typename: 'ImageVersion', imageId: ref.imageId });
          return { imageId: ref.imageId };
        },
        deploymentCount: (v) => rows.filter((d) => d.imageId === v.imageId).length,
      },
    },
  });
}

/**
 * startDeploymentsSubgraph serves the subgraph on a free port of 127.0.0.1.
 *
 * @param {{rows: DeploymentRow[]}} options
 * @returns {Promise<{url: string, references: object[], stop: () => Promise<void>}>}
 *   url is the GraphQL endpoint; references lists the ImageVersion
 *   representations resolved so far; stop closes the server.
 */
export async function startDeploymentsSubgraph({ rows }) {
  const references = [];
  const server = new ApolloServer({
    schema: buildDeploymentsSchema(rows, references),
    plugins: [ApolloServerPluginLandingPageDisabled(), ApolloServerPluginInlineTraceDisabled()],
  });
  const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: 0 } });
  return { url, references, stop: () => server.stop() };
}
