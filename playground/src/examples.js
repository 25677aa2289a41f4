// The operations the editor opens with, one tab each. They are GraphiQL's
// defaultTabs: used when the browser has no saved tabs for this origin.
// The first needs no variables, so pressing Run on a fresh page shows data.
// The last two are subscriptions, which run over a WebSocket (main.js).

const pagination = `# Welcome to imagegraph's playground.
# Run this with the pink button or
# Ctrl+Enter: the first page of images.
# The book icon (left) opens the docs.
# Next page: see the NextPage tab.
query FirstPage {
  imageGroups(first: 5) {
    totalCount
    pageInfo {
      hasNextPage
      hasPreviousPage
      startCursor
      endCursor
    }
    edges {
      cursor
      node {
        id
        groupId
        name
        favoritesCount
        latestVersion {
          versionName
          author
          isFree
          tags
        }
      }
    }
  }
}
`;

const nextPage = `# Cursor pagination: put an endCursor
# from FirstPage in "after" (variables,
# below); null gives the first page.
query NextPage($first: Int = 5, $after: String) {
  imageGroups(first: $first, after: $after) {
    totalCount
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      groupId
      name
    }
  }
}
`;

const filters = `# Filters combine with AND; orderBy
# sorts the groups. matchedVersions:
# the versions the filter matched.
query FreeAIGCImages(
  $filter: ImageFilter = { tags: ["AIGC"], freeOnly: true }
  $orderBy: ImageOrder = { field: FAVORITES, direction: DESC }
) {
  imageGroups(first: 10, filter: $filter, orderBy: $orderBy) {
    totalCount
    availableTotalCount
    edges {
      node {
        name
        favoritesCount
      }
      matchedVersions {
        versionName
        price
        isFree
        tags
      }
    }
  }
}
`;

const versions = `# A group holds versions: latestVersion
# is the newest available one; versions
# pages through them (AVAILABLE only).
query GroupsWithVersions {
  imageGroups(first: 3, orderBy: { field: PUBLISHED_AT, direction: DESC }) {
    nodes {
      name
      status
      latestVersion {
        imageId
        versionName
        publishedAt
      }
      versions(first: 5, status: [AVAILABLE]) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          cursor
          node {
            imageId
            versionName
            versionDescription
            author
            authorType
            price
            supportedGpuTypes
            sizeMB
            softwarePorts {
              software
              port
            }
          }
        }
      }
    }
  }
}
`;

const lookups = `# Lookups: node(id:) fetches any object
# by its global id; imageGroup and
# imageVersion take upstream ids. Put
# ids from FirstPage in the variables.
query Lookups($id: ID!, $groupId: ID!, $imageId: ID!) {
  node(id: $id) {
    id
    __typename
    ... on ImageGroup {
      name
      favoritesCount
    }
    ... on ImageVersion {
      versionName
      author
    }
  }
  imageGroup(groupId: $groupId) {
    name
    versions(first: 3) {
      nodes {
        imageId
        versionName
      }
    }
  }
  imageVersion(imageId: $imageId) {
    name
    versionName
    group {
      groupId
      name
    }
  }
}
`;

const watchReview = `# A subscription, live: the first result
# is the version as it is now, then one
# more each time a selected field changes
# (the server polls every 5 s, by default).
# Run it, then, on the built-in sandbox,
# change the version from a terminal:
#   curl -X POST localhost:8080/sandbox/versions/compshareImage-reviewing001 -d '{"status":"Available"}'
# (Available, Reviewing or Offline), or
# wait: the sandbox publishes it on its
# own within a minute (SANDBOX_TICK).
# The stop button ends the subscription.
subscription WatchReview {
  imageVersion(imageId: "compshareImage-reviewing001") {
    imageId
    name
    versionName
    status
    publishedAt
    price
  }
}
`;

const watchTopGroups = `# The first page of imageGroups, live: a
# new result when a group moves in or out
# of the page, or a field of one changes.
# On the sandbox, give a group more
# favourites from a terminal:
#   curl -X POST localhost:8080/sandbox/groups/group-x3efh4me -d '{"favoritesCount":5000}'
# or wait: each minute the sandbox adds
# one favourite to a group (SANDBOX_TICK).
subscription WatchTopGroups {
  imageGroups(first: 3, orderBy: { field: FAVORITES, direction: DESC }) {
    totalCount
    nodes {
      groupId
      name
      favoritesCount
    }
  }
}
`;

// IDs from the built-in sandbox dataset (upstream/sandbox/data/images.json),
// so the tab runs as is there: the group "Langchain-Chatchat Lite" and its
// version v1.1.
const lookupVariables = {
  id: 'SW1hZ2VHcm91cDpncm91cC1iNnYxcWIwcw',
  groupId: 'group-b6v1qb0s',
  imageId: 'compshareImage-rxiczf3e7kaq',
};

/** The default tabs, the first of which needs no variables. */
export const defaultTabs = [
  { query: pagination },
  { query: nextPage, variables: JSON.stringify({ first: 5, after: null }, null, 2) },
  { query: filters },
  { query: versions },
  { query: lookups, variables: JSON.stringify(lookupVariables, null, 2) },
  { query: watchReview },
  { query: watchTopGroups },
];
