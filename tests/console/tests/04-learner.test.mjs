// A learner: found by part of the name, what it holds with each item's
// sources, why it holds its team (the explain steps), and a manual grant
// added and removed, each with confirmation.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { api, checkA11y, launch, screenshot, seed, session, signIn, tabTo } from '../lib/console.mjs';

const A = seed.a;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a learner found by name (keyboard alone) shows its team with the source, and why it holds it', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken, { keyboard: true });
  // The overview's heading has the focus; the navigation is before it.
  await tabTo(page, page.getByRole('link', { name: 'Learners', exact: true }), { back: true });
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Learners' }).waitFor();
  await tabTo(page, page.getByLabel('Name, email or id'));
  await page.keyboard.type('ann');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: '1 learner found.' }).waitFor();
  await checkA11y(page, 'the learner search');
  await tabTo(page, page.getByRole('link', { name: A.learner.displayName }));
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: `Learner ${A.learner.userName}` }).waitFor();

  // The team, with the group it comes from.
  const held = page.getByRole('table', { name: 'Held by this learner, with the source of each' });
  const team = held.getByRole('row').filter({ has: page.getByRole('rowheader', { name: A.learner.team, exact: true }) });
  await team.getByRole('cell', { name: 'Team', exact: true }).waitFor();
  await team.getByText(`group:${A.groups.Sales}`).waitFor();
  const path = held.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'Sales Onboarding', exact: true }) });
  await path.getByText('rules:sales-onboarding', { exact: false }).waitFor();

  // Why: the mapper saw the Sales group, and the rule matched because of it.
  const why = page.getByRole('region', { name: 'Why: the explain steps' });
  await why.getByRole('definition').filter({ hasText: 'Sales' }).first().waitFor();
  const rule = why.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'sales-onboarding', exact: true }) });
  await rule.getByText('yes', { exact: true }).waitFor();
  const teachers = why.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'teachers', exact: true }) });
  await teachers.getByText('no', { exact: true }).waitFor();
  await checkA11y(page, 'a learner');
  await screenshot(page, 'learner');
  s.assertClean();
  await s.close();
});

test('a manual grant is added and removed, each after confirmation', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken);
  await page.goto(`/admin#/learners/${A.learner.id}`);
  await page.getByRole('heading', { level: 1, name: `Learner ${A.learner.userName}` }).waitFor();
  const grant = page.getByRole('form', { name: 'Grant by hand' });
  await grant.getByLabel('Kind').selectOption({ label: 'Team' });
  await grant.getByLabel('Name').fill('Mentors');
  await grant.getByRole('button', { name: 'Add' }).click();
  const dialog = page.getByRole('dialog', { name: 'Grant the team “Mentors”?' });
  // Cancel first: nothing is granted.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  let ann = await api(A.adminToken, 'GET', `/admin/v1/learners/${A.learner.id}`);
  assert.ok(!ann.json.teams.some((t) => t.name === 'Mentors'), 'granted although cancelled');
  await grant.getByRole('button', { name: 'Add' }).click();
  await checkA11y(page, 'the grant confirmation');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('status').filter({ hasText: `Granted the team “Mentors” to ${A.learner.userName}.` }).waitFor();
  const held = page.getByRole('table', { name: 'Held by this learner, with the source of each' });
  const mentors = held.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'Mentors', exact: true }) });
  await mentors.getByText('manual', { exact: true }).waitFor();
  ann = await api(A.adminToken, 'GET', `/admin/v1/learners/${A.learner.id}`);
  assert.deepEqual(ann.json.teams.find((t) => t.name === 'Mentors')?.sources, ['manual']);

  await mentors.getByRole('button', { name: 'Remove team Mentors' }).click();
  await page.getByRole('dialog', { name: 'Remove the team “Mentors”?' }).getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('status').filter({ hasText: 'Removed the team “Mentors”' }).waitFor();
  await mentors.waitFor({ state: 'detached' });
  ann = await api(A.adminToken, 'GET', `/admin/v1/learners/${A.learner.id}`);
  assert.ok(!ann.json.teams.some((t) => t.name === 'Mentors'), 'still holds the removed team');
  s.assertClean();
  await s.close();
});
