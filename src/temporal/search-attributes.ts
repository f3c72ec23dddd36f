import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes, registered on the dev server at start and on a production cluster by its operator. */
export const siteAttribute = defineSearchAttributeKey('IcnSite', SearchAttributeType.KEYWORD);
export const operationAttribute = defineSearchAttributeKey('IcnOperation', SearchAttributeType.KEYWORD);
export const rolloutAttribute = defineSearchAttributeKey('IcnRolloutId', SearchAttributeType.KEYWORD);

export const searchAttributes = [siteAttribute, operationAttribute, rolloutAttribute];
