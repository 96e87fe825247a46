// Settings: written next.
export async function render(view, ctx) {
  ctx.heading('Settings');
}
